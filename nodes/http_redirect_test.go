package nodes

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// seen is what one request brought to a server.
type seen struct {
	method, path, body string
	header             http.Header
}

// originServer is an httptest server on 127.0.0.1 that records every
// request. Its handler answers /to/… with 200 and /redirect/CODE?to=URL
// with a CODE redirect to URL.
type originServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seen
}

func newOriginServer(t *testing.T) *originServer {
	s := &originServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, seen{r.Method, r.URL.Path, string(b), r.Header.Clone()})
		s.mu.Unlock()
		if code, ok := strings.CutPrefix(r.URL.Path, "/redirect/"); ok {
			w.Header().Set("Location", r.URL.Query().Get("to"))
			w.WriteHeader(map[string]int{"301": 301, "302": 302, "303": 303, "307": 307, "308": 308}[code])
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *originServer) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.seen...)
}

// redirectURL is a URL on s that redirects with code to target.
func (s *originServer) redirectURL(code, target string) string {
	return s.URL + "/redirect/" + code + "?to=" + url.QueryEscape(target)
}

// workflowHeaders are the headers a workflow sets: none may reach another
// origin.
var workflowHeaders = map[string]any{"X-Api-Key": "secret-key", "Authorization": "Bearer secret-token",
	"Cookie": "session=secret", "X-Trace": "t1"}

func TestRedirectAcrossOrigins(t *testing.T) {
	fetch := func(t *testing.T, with map[string]any) (map[string]any, error) {
		t.Helper()
		client := NewHTTPClient("test")
		t.Cleanup(client.CloseIdleConnections)
		with["headers"] = workflowHeaders
		res, err := httpFetch{}.Run(context.Background(), &Invocation{Node: "n", Index: -1, With: with,
			Host: &fetchTestHost{client: client, key: "run1:n:-1"}})
		if err != nil {
			return nil, err
		}
		return res.(map[string]any), nil
	}
	// noWorkflowHeaders fails if any header the workflow set, or that lgx
	// or net/http derived from the first request, reached a server.
	noWorkflowHeaders := func(t *testing.T, r seen) {
		t.Helper()
		for _, h := range []string{"X-Api-Key", "Authorization", "Cookie", "X-Trace", "Idempotency-Key", "Referer", "Content-Type"} {
			if v := r.header.Get(h); v != "" {
				t.Errorf("%s %s received %s: %q", r.method, r.path, h, v)
			}
		}
		if ua := r.header.Get("User-Agent"); ua != "lgx/test" {
			t.Errorf("User-Agent %q, want lgx/test", ua)
		}
	}
	allWorkflowHeaders := func(t *testing.T, r seen, idem bool) {
		t.Helper()
		for h, v := range workflowHeaders {
			if got := r.header.Get(h); got != v {
				t.Errorf("%s %s: %s = %q, want %q", r.method, r.path, h, got, v)
			}
		}
		if got := r.header.Get("Idempotency-Key"); idem && got != "run1:n:-1" {
			t.Errorf("%s %s: Idempotency-Key = %q", r.method, r.path, got)
		}
	}

	for _, code := range []string{"301", "302", "303", "307", "308"} {
		t.Run("GET "+code+" to another origin", func(t *testing.T) {
			a, b := newOriginServer(t), newOriginServer(t)
			res, err := fetch(t, map[string]any{"url": a.redirectURL(code, b.URL+"/to/x"),
				"query": map[string]any{"token": "secret query"}, "idempotency_key": "given-key"})
			if err != nil {
				t.Fatal(err)
			}
			if res["url"] != b.URL+"/to/x" {
				t.Errorf("url = %v", res["url"])
			}
			ra, rb := a.requests(), b.requests()
			if len(ra) != 1 || len(rb) != 1 {
				t.Fatalf("requests: a %d, b %d", len(ra), len(rb))
			}
			allWorkflowHeaders(t, ra[0], false)
			if ra[0].header.Get("Idempotency-Key") != "given-key" {
				t.Errorf("first request lacks its Idempotency-Key")
			}
			noWorkflowHeaders(t, rb[0])
		})
	}

	for _, code := range []string{"307", "308"} {
		t.Run("POST body "+code+" to another origin is not followed", func(t *testing.T) {
			a, b := newOriginServer(t), newOriginServer(t)
			from := a.redirectURL(code, b.URL+"/to/x")
			_, err := fetch(t, map[string]any{"url": from, "method": "POST", "body": "secret body"})
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindStatus || e.Status != map[string]int{"307": 307, "308": 308}[code] {
				t.Fatalf("err = %v, want a status error %s", err, code)
			}
			if !errors.Is(err, ErrCrossOriginBody) {
				t.Errorf("err does not wrap ErrCrossOriginBody: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, from) || !strings.Contains(msg, b.URL+"/to/x") || !strings.Contains(msg, "another origin") {
				t.Errorf("message does not name both URLs: %s", msg)
			}
			if n := len(b.requests()); n != 0 {
				t.Errorf("the other origin got %d requests", n)
			}
		})
	}

	for _, code := range []string{"301", "302", "303"} {
		t.Run("POST body "+code+" to another origin becomes a bare GET", func(t *testing.T) {
			a, b := newOriginServer(t), newOriginServer(t)
			_, err := fetch(t, map[string]any{"url": a.redirectURL(code, b.URL+"/to/x"), "method": "POST",
				"json": map[string]any{"k": "secret"}})
			if err != nil {
				t.Fatal(err)
			}
			rb := b.requests()
			if len(rb) != 1 || rb[0].method != "GET" || rb[0].body != "" {
				t.Fatalf("other origin got %+v", rb)
			}
			noWorkflowHeaders(t, rb[0])
			allWorkflowHeaders(t, a.requests()[0], true)
		})
	}

	t.Run("same origin 307 keeps headers and body", func(t *testing.T) {
		a := newOriginServer(t)
		from := a.redirectURL("307", "/to/x")
		if _, err := fetch(t, map[string]any{"url": from, "method": "POST", "body": "the body",
			"query": map[string]any{"token": "q"}}); err != nil {
			t.Fatal(err)
		}
		ra := a.requests()
		if len(ra) != 2 {
			t.Fatalf("%d requests", len(ra))
		}
		for _, r := range ra {
			if r.method != "POST" || r.body != "the body" {
				t.Errorf("%s %s body %q", r.method, r.path, r.body)
			}
			allWorkflowHeaders(t, r, true)
		}
		if ref := ra[1].header.Get("Referer"); !strings.HasPrefix(ref, a.URL+"/redirect/307") {
			t.Errorf("same-origin Referer = %q", ref)
		}
	})

	t.Run("back to the first origin after leaving it", func(t *testing.T) {
		a, b := newOriginServer(t), newOriginServer(t)
		back := b.redirectURL("302", a.URL+"/to/back")
		if _, err := fetch(t, map[string]any{"url": a.redirectURL("302", back)}); err != nil {
			t.Fatal(err)
		}
		ra, rb := a.requests(), b.requests()
		if len(ra) != 2 || len(rb) != 1 {
			t.Fatalf("requests: a %d, b %d", len(ra), len(rb))
		}
		allWorkflowHeaders(t, ra[0], false)
		noWorkflowHeaders(t, rb[0])
		noWorkflowHeaders(t, ra[1]) // the other origin chose this request
	})
}

func TestOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"http://h/x", "http://h:80/y?q", true},
		{"https://H.example/", "https://h.example:443/z", true},
		{"http://h/", "https://h/", false},
		{"http://h:8080/", "http://h:8081/", false},
		{"http://127.0.0.1:1/", "http://localhost:1/", false},
		{"http://h.example/", "http://sub.h.example/", false},
		{"http://[::1]:80/", "http://[::1]/", true},
	}
	for _, tt := range tests {
		a, _ := url.Parse(tt.a)
		b, _ := url.Parse(tt.b)
		if got := origin(a) == origin(b); got != tt.same {
			t.Errorf("same origin %s %s = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
}
