package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

// fetchTestHost is a Host with a real HTTP client and a fixed idempotency key;
// everything else is refused.
type fetchTestHost struct {
	client *http.Client
	key    string
}

func (h *fetchTestHost) HTTPClient() *http.Client { return h.client }
func (h *fetchTestHost) IdempotencyKey() string   { return h.key }
func (h *fetchTestHost) Token(string)             {}
func (h *fetchTestHost) Provider(string) (*Provider, error) {
	return nil, errors.New("fetchTestHost: no providers")
}

// fetchEnv is one test's server, host and leak check. The leak check is
// registered first so that it runs after the server and the client's idle
// connections are closed.
type fetchEnv struct {
	t    *testing.T
	srv  *httptest.Server
	host *fetchTestHost
}

func newFetchEnv(t *testing.T, h http.Handler) *fetchEnv {
	t.Helper()
	opts := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opts) })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := NewHTTPClient("1.2.3")
	t.Cleanup(client.CloseIdleConnections)
	return &fetchEnv{t: t, srv: srv, host: &fetchTestHost{client: client, key: "run1-node-0"}}
}

func (e *fetchEnv) run(ctx context.Context, with map[string]any) (map[string]any, error) {
	e.t.Helper()
	typ, ok := Lookup("http_fetch")
	if !ok {
		e.t.Fatal("http_fetch is not registered")
	}
	res, err := typ.Run(ctx, &Invocation{RunID: "run1", Node: "n", Index: -1, Attempt: 1, With: with, Host: e.host})
	if err != nil {
		if res != nil {
			e.t.Errorf("Run returned a result %v with error %v", res, err)
		}
		return nil, err
	}
	m, ok := res.(map[string]any)
	if !ok {
		e.t.Fatalf("result is %T, want map[string]any", res)
	}
	// Every result must survive JSON encoding as valid UTF-8 JSON.
	b, err := json.Marshal(m)
	if err != nil || !json.Valid(b) || !utf8.Valid(b) {
		e.t.Fatalf("result does not encode as JSON: %v", err)
	}
	return m, nil
}

func asFetchError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *nodes.Error", err, err)
	}
	return e
}

// fetchEchoHandler answers with a JSON description of the request it got.
func fetchEchoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	hdr := map[string]any{}
	for k, v := range r.Header {
		hdr[k] = strings.Join(v, ", ")
	}
	q := map[string]any{}
	for k, v := range r.URL.Query() {
		l := make([]any, len(v))
		for i, s := range v {
			l[i] = s
		}
		q[k] = l
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method, "path": r.URL.Path, "query": q, "headers": hdr, "body": string(body), "host": r.Host,
	})
}

func TestHTTPFetchSendsRequest(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(fetchEchoHandler))
	tests := []struct {
		name  string
		with  map[string]any
		check func(t *testing.T, got map[string]any)
	}{
		{"default GET", map[string]any{"url": env.srv.URL + "/a/b"}, func(t *testing.T, got map[string]any) {
			fetchEq(t, got["method"], "GET")
			fetchEq(t, got["path"], "/a/b")
			fetchEq(t, got["body"], "")
		}},
		{"method upper-cased and body sent", map[string]any{"url": env.srv.URL, "method": "put", "body": "hello"}, func(t *testing.T, got map[string]any) {
			fetchEq(t, got["method"], "PUT")
			fetchEq(t, got["body"], "hello")
		}},
		{"headers scalar and list", map[string]any{"url": env.srv.URL, "headers": map[string]any{
			"x-token": "abc", "X-Num": 3, "X-Many": []any{"a", "b"}, "X-Flag": true, "Host": "example.test"}},
			func(t *testing.T, got map[string]any) {
				h := got["headers"].(map[string]any)
				fetchEq(t, h["X-Token"], "abc")
				fetchEq(t, h["X-Num"], "3")
				fetchEq(t, h["X-Many"], "a, b")
				fetchEq(t, h["X-Flag"], "true")
				fetchEq(t, got["host"], "example.test")
			}},
		{"query merged into URL query", map[string]any{"url": env.srv.URL + "/s?keep=1&q=old", "query": map[string]any{
			"q": "new value", "page": 2, "tag": []any{"x", "y"}, "skip": nil, "ratio": 0.5}},
			func(t *testing.T, got map[string]any) {
				q := got["query"].(map[string]any)
				fetchEqJSON(t, q, `{"keep":["1"],"page":["2"],"q":["new value"],"ratio":["0.5"],"tag":["x","y"]}`)
			}},
		{"json body", map[string]any{"url": env.srv.URL, "method": "POST", "json": map[string]any{"a": 1, "b": []any{"<x>", true}}},
			func(t *testing.T, got map[string]any) {
				fetchEq(t, got["body"], `{"a":1,"b":["<x>",true]}`)
				fetchEq(t, got["headers"].(map[string]any)["Content-Type"], "application/json")
			}},
		{"json body keeps explicit content type", map[string]any{"url": env.srv.URL, "method": "POST", "json": "s",
			"headers": map[string]any{"Content-Type": "application/vnd.x+json"}},
			func(t *testing.T, got map[string]any) {
				fetchEq(t, got["body"], `"s"`)
				fetchEq(t, got["headers"].(map[string]any)["Content-Type"], "application/vnd.x+json")
			}},
		{"Go string maps", map[string]any{"url": env.srv.URL, "headers": map[string]string{"X-A": "1"}, "query": map[string]string{"k": "v"}},
			func(t *testing.T, got map[string]any) {
				fetchEq(t, got["headers"].(map[string]any)["X-A"], "1")
				fetchEqJSON(t, got["query"], `{"k":["v"]}`)
			}},
		{"null fields count as absent", map[string]any{"url": env.srv.URL, "method": nil, "body": nil, "json": nil, "timeout": nil, "expect": nil},
			func(t *testing.T, got map[string]any) {
				fetchEq(t, got["method"], "GET")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := env.run(context.Background(), tt.with)
			if err != nil {
				t.Fatal(err)
			}
			fetchEq(t, res["status"], 200)
			got, ok := res["json"].(map[string]any)
			if !ok {
				t.Fatalf("json = %#v, want the echoed object", res["json"])
			}
			tt.check(t, got)
		})
	}
}

func TestHTTPFetchResult(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Multi", "one")
		w.Header().Add("X-Multi", "two")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, "created")
	}))
	res, err := env.run(context.Background(), map[string]any{"url": env.srv.URL + "/r?x=1"})
	if err != nil {
		t.Fatal(err)
	}
	fetchEq(t, res["url"], env.srv.URL+"/r?x=1")
	fetchEq(t, res["status"], 201)
	fetchEq(t, res["body"], "created")
	fetchEq(t, res["json"], nil)
	fetchEq(t, res["truncated"], false)
	h := res["headers"].(map[string]any)
	fetchEq(t, h["X-Multi"], "one, two")
	fetchEq(t, h["Content-Length"], "7")
	if d, ok := res["duration_ms"].(int); !ok || d < 0 {
		t.Errorf("duration_ms = %#v, want a non-negative int", res["duration_ms"])
	}
}

// TestHTTPFetchResultFields: with Invocation.ResultFields only the fields
// named (and the cheap status and truncated) are built, duration_ms too
// (two clock reads a request); a status outside expect is still an error.
func TestHTTPFetchResultFields(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/missing" {
			w.WriteHeader(404)
		}
		_, _ = io.WriteString(w, `{"a": 1}`)
	}))
	typ, _ := Lookup("http_fetch")
	tests := []struct {
		fields map[string]bool
		want   []string
	}{
		{nil, []string{"url", "status", "headers", "body", "json", "truncated", "duration_ms"}},
		{map[string]bool{}, []string{"status", "truncated"}},
		{map[string]bool{"json": true, "nope": true}, []string{"status", "truncated", "json"}},
		{map[string]bool{"duration_ms": true}, []string{"status", "truncated", "duration_ms"}},
	}
	for _, tt := range tests {
		got, err := typ.Run(context.Background(), &Invocation{Index: -1, Attempt: 1, Host: env.host,
			With: map[string]any{"url": env.srv.URL}, ResultFields: tt.fields})
		if err != nil {
			t.Fatal(err)
		}
		res := got.(map[string]any)
		if len(res) != len(tt.want) {
			t.Errorf("fields %v: result has %d fields %v, want %v", tt.fields, len(res), res, tt.want)
		}
		for _, f := range tt.want {
			if _, ok := res[f]; !ok {
				t.Errorf("fields %v: result lacks %q", tt.fields, f)
			}
		}
		if tt.fields["json"] {
			fetchEqJSON(t, res["json"], `{"a":1}`)
		}
	}
	_, err := typ.Run(context.Background(), &Invocation{Index: -1, Attempt: 1, Host: env.host,
		With: map[string]any{"url": env.srv.URL + "/missing"}, ResultFields: map[string]bool{}})
	if KindOf(err) != KindStatus {
		t.Errorf("404 with no fields read: %v, want a status error", err)
	}
}

func TestHTTPFetchExpect(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		_, _ = fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/"), &code)
		w.WriteHeader(code)
	}))
	tests := []struct {
		status int
		expect any // nil = default
		ok     bool
	}{
		{200, nil, true},
		{204, nil, true},
		{299, nil, true},
		{301, nil, false},
		{404, nil, false},
		{404, 404, true},
		{404, "404", true},
		{404, "4xx", true},
		{404, "4XX", true},
		{500, "4xx", false},
		{200, 201, false},
		{304, []any{200, "3xx"}, true},
		{200, []any{200, "3xx"}, true},
		{418, []any{200, "3xx"}, false},
		{418, []any{int64(418)}, true},
		{418, []any{418.0}, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%v", tt.status, tt.expect), func(t *testing.T) {
			with := map[string]any{"url": fmt.Sprintf("%s/%d", env.srv.URL, tt.status), "follow_redirects": false}
			if tt.expect != nil {
				with["expect"] = tt.expect
			}
			res, err := env.run(context.Background(), with)
			if tt.ok {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				fetchEq(t, res["status"], tt.status)
				return
			}
			e := asFetchError(t, err)
			if e.Kind != KindStatus || e.Status != tt.status {
				t.Fatalf("got kind %q status %d, want status %d: %v", e.Kind, e.Status, tt.status, err)
			}
		})
	}
}

func TestHTTPFetchStatusErrors(t *testing.T) {
	retryAt := time.Now().Add(40 * time.Second).UTC().Format(http.TimeFormat)
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(404)
			_, _ = io.WriteString(w, "no such\n  page "+strings.Repeat("x", 500))
		case "/busy":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
		case "/down":
			w.Header().Set("Retry-After", retryAt)
			w.WriteHeader(503)
		case "/bad-retry-after":
			w.Header().Set("Retry-After", "whenever")
			w.WriteHeader(500)
		}
	}))
	tests := []struct {
		path        string
		status      int
		retried     bool // by the default policy (SPEC §3.2)
		retryAfter  time.Duration
		tolerance   time.Duration
		wantMessage string
	}{
		{"/missing", 404, false, 0, 0, "GET " + env.srv.URL + "/missing: status 404 Not Found: no such page xxx"},
		{"/busy", 429, true, 3 * time.Second, 0, "GET " + env.srv.URL + "/busy: status 429 Too Many Requests"},
		{"/down", 503, true, 40 * time.Second, 2 * time.Second, "GET " + env.srv.URL + "/down: status 503 Service Unavailable"},
		{"/bad-retry-after", 500, true, 0, 0, "status 500 Internal Server Error"},
	}
	defaultOn := []string{"network", "timeout", "429", "5xx"}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := env.run(context.Background(), map[string]any{"url": env.srv.URL + tt.path,
				"headers": map[string]any{"Authorization": "Bearer SECRET"}})
			e := asFetchError(t, err)
			if e.Kind != KindStatus || e.Status != tt.status {
				t.Fatalf("kind %q status %d, want status %d", e.Kind, e.Status, tt.status)
			}
			retried := false
			for _, on := range defaultOn {
				retried = retried || Matches(err, on)
			}
			if retried != tt.retried {
				t.Errorf("retried by default policy = %v, want %v", retried, tt.retried)
			}
			if d := e.RetryAfter - tt.retryAfter; d < -tt.tolerance || d > tt.tolerance {
				t.Errorf("RetryAfter = %v, want %v ± %v", e.RetryAfter, tt.retryAfter, tt.tolerance)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMessage)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("message leaks a request header: %q", msg)
			}
			if len(msg) > 400 {
				t.Errorf("message is %d bytes long; the body bodyExcerpt is not bounded", len(msg))
			}
		})
	}
}

func TestHTTPFetchTimeoutAndCancel(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	tests := []struct {
		name     string
		path     string
		timeout  any
		ctx      func() (context.Context, context.CancelFunc)
		wantKind Kind
	}{
		{"with.timeout on headers", "/slow", "80ms", nil, KindTimeout},
		{"with.timeout on body", "/slow-body", "80ms", nil, KindTimeout},
		{"with.timeout as time.Duration", "/slow", 60 * time.Millisecond, nil, KindTimeout},
		{"attempt deadline from ctx", "/slow", nil, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 80*time.Millisecond)
		}, KindTimeout},
		{"run cancelled", "/slow", "10s", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(80*time.Millisecond, cancel)
			return ctx, cancel
		}, KindCancelled},
		{"run cancelled while reading body", "/slow-body", nil, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(80*time.Millisecond, cancel)
			return ctx, cancel
		}, KindCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			with := map[string]any{"url": env.srv.URL + tt.path}
			if tt.timeout != nil {
				with["timeout"] = tt.timeout
			}
			start := time.Now()
			_, err := env.run(ctx, with)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v; the deadline was not honoured", el)
			}
			e := asFetchError(t, err)
			if e.Kind != tt.wantKind {
				t.Errorf("kind = %q, want %q (%v)", e.Kind, tt.wantKind, err)
			}
			if !strings.Contains(err.Error(), "GET "+env.srv.URL+tt.path) {
				t.Errorf("error %q does not name method and URL", err)
			}
		})
	}
}

func TestHTTPFetchNetworkErrors(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reset":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
			_ = conn.Close()
		case "/cut-body":
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a bit")
			_ = buf.Flush()
			_ = conn.Close()
		}
	}))
	// A port nobody listens on: bind, note, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/"
	_ = l.Close()
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(fetchEchoHandler))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	for _, url := range []string{env.srv.URL + "/reset", env.srv.URL + "/cut-body", refused, tlsSrv.URL + "/"} {
		t.Run(url, func(t *testing.T) {
			_, err := env.run(context.Background(), map[string]any{"url": url})
			e := asFetchError(t, err)
			if e.Kind != KindNetwork {
				t.Errorf("kind = %q, want network (%v)", e.Kind, err)
			}
			if !strings.HasPrefix(err.Error(), "GET "+url+": ") {
				t.Errorf("error %q does not start with the method and URL", err)
			}
			if strings.Count(err.Error(), url) != 1 {
				t.Errorf("error %q repeats the URL", err)
			}
		})
	}
}

func TestHTTPFetchMaxBytes(t *testing.T) {
	const huge = 50 << 20
	var mu sync.Mutex
	var sent int64
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.URL.Query().Get("n"), &n)
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		chunk := []byte(strings.Repeat("a", 32<<10))
		for n > 0 {
			c := chunk[:min(n, len(chunk))]
			m, err := w.Write(c)
			mu.Lock()
			sent += int64(m)
			mu.Unlock()
			if err != nil {
				return
			}
			n -= len(c)
		}
	}))
	tests := []struct {
		name      string
		n         int
		chunked   bool
		maxBytes  any
		wantLen   int
		truncated bool
	}{
		{"under default", 1000, false, nil, 1000, false},
		{"exactly max", 1024, false, 1024, 1024, false},
		{"one over max", 1025, false, 1024, 1024, true},
		{"size string", 5000, true, "1KiB", 1024, true},
		{"decimal size string", 5000, false, "2KB", 2000, true},
		{"zero", 10, false, 0, 0, true},
		{"empty body with zero", 0, false, 0, 0, false},
		{"huge body content-length", huge, false, "1MiB", 1 << 20, true},
		{"huge body chunked", huge, true, 1 << 20, 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			sent = 0
			mu.Unlock()
			u := fmt.Sprintf("%s/?n=%d", env.srv.URL, tt.n)
			if tt.chunked {
				u += "&chunked=1"
			}
			with := map[string]any{"url": u}
			if tt.maxBytes != nil {
				with["max_bytes"] = tt.maxBytes
			}
			start := time.Now()
			res, err := env.run(context.Background(), with)
			if err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %v: the body was not cut short", el)
			}
			if got := len(res["body"].(string)); got != tt.wantLen {
				t.Errorf("len(body) = %d, want %d", got, tt.wantLen)
			}
			fetchEq(t, res["truncated"], tt.truncated)
			if tt.n == huge {
				mu.Lock()
				s := sent
				mu.Unlock()
				if s > huge/2 {
					t.Errorf("server wrote %d bytes before the client hung up; want far fewer than %d", s, huge)
				}
			}
		})
	}
}

func TestHTTPFetchRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/from", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/to?x=1", http.StatusFound) })
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "arrived "+r.Method+" "+r.Header.Get("User-Agent"))
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	env := newFetchEnv(t, mux)

	t.Run("followed", func(t *testing.T) {
		res, err := env.run(context.Background(), map[string]any{"url": env.srv.URL + "/from"})
		if err != nil {
			t.Fatal(err)
		}
		fetchEq(t, res["url"], env.srv.URL+"/to?x=1")
		fetchEq(t, res["status"], 200)
		fetchEq(t, res["body"], "arrived GET lgx/1.2.3")
	})
	t.Run("not followed, 3xx expected", func(t *testing.T) {
		res, err := env.run(context.Background(), map[string]any{"url": env.srv.URL + "/from",
			"follow_redirects": false, "expect": []any{200, "3xx"}})
		if err != nil {
			t.Fatal(err)
		}
		fetchEq(t, res["url"], env.srv.URL+"/from")
		fetchEq(t, res["status"], 302)
		fetchEq(t, res["headers"].(map[string]any)["Location"], "/to?x=1")
	})
	t.Run("not followed, 3xx not expected", func(t *testing.T) {
		_, err := env.run(context.Background(), map[string]any{"url": env.srv.URL + "/from", "follow_redirects": false})
		e := asFetchError(t, err)
		if e.Kind != KindStatus || e.Status != 302 {
			t.Fatalf("kind %q status %d, want status 302", e.Kind, e.Status)
		}
	})
	t.Run("loop", func(t *testing.T) {
		_, err := env.run(context.Background(), map[string]any{"url": env.srv.URL + "/loop"})
		e := asFetchError(t, err)
		if e.Kind != KindStatus || e.Status != 302 || !errors.Is(err, ErrTooManyRedirects) {
			t.Fatalf("kind %q status %d err %v; want a status 302 too-many-redirects error", e.Kind, e.Status, err)
		}
		want := "GET " + env.srv.URL + "/loop: too many redirects: stopped after 10 redirects"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q, want prefix %q", err, want)
		}
	})
}

func TestHTTPFetchBodyDecoding(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.URL.Query().Get("ct"))
		_, _ = io.WriteString(w, r.URL.Query().Get("body"))
	}))
	tests := []struct {
		name     string
		ct, body string
		maxBytes any
		wantBody string
		wantJSON string // JSON of result.json; "null" = not parsed
	}{
		{"json", "application/json", `{"n":3,"f":1.5,"big":12345678901234567890,"l":[1,"a"]}`, nil, "", `{"big":12345678901234567000,"f":1.5,"l":[1,"a"],"n":3}`},
		{"json with charset", "application/json; charset=utf-8", `[true,null]`, nil, "", `[true,null]`},
		{"problem+json", "application/problem+json", `{"title":"x"}`, nil, "", `{"title":"x"}`},
		{"upper-case media type", "Application/JSON", `1`, nil, "", `1`},
		{"text that looks like json", "text/plain", `{"a":1}`, nil, "", `null`},
		{"no content type", "", `{"a":1}`, nil, "", `null`},
		{"invalid json", "application/json", `{"a":`, nil, "", `null`},
		{"trailing data", "application/json", `{} {}`, nil, "", `null`},
		// Before, json held +Inf, and writing it failed with a hint about
		// division by zero; now the body is not JSON lgx can hold.
		{"number beyond float64", "application/json", `{"n":1e400}`, nil, "", `null`},
		{"truncated json", "application/json", `{"a":"bcdef"}`, 5, `{"a":`, `null`},
		{"empty json body", "application/json", ``, nil, "", `null`},
		{"non-UTF-8 text", "text/plain", "ok\xff\xfeend", nil, "ok\uFFFDend", `null`},
		{"non-UTF-8 in json", "application/json", "\"a\xffb\"", nil, "\"a\uFFFDb\"", "\"a\uFFFDb\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := make(map[string]any)
			q["ct"], q["body"] = tt.ct, tt.body
			with := map[string]any{"url": env.srv.URL, "query": q}
			if tt.maxBytes != nil {
				with["max_bytes"] = tt.maxBytes
			}
			res, err := env.run(context.Background(), with)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantBody
			if want == "" {
				want = tt.body
			}
			fetchEq(t, res["body"], want)
			fetchEqJSON(t, res["json"], tt.wantJSON)
			if l, ok := res["json"].([]any); ok {
				if _, isBool := l[0].(bool); !isBool {
					t.Errorf("json[0] is %T", l[0])
				}
			}
			if m, ok := res["json"].(map[string]any); ok && m["n"] != nil {
				if _, isInt := m["n"].(int); !isInt {
					t.Errorf("integral number decoded as %T, want int", m["n"])
				}
				if _, isFloat := m["f"].(float64); !isFloat {
					t.Errorf("fractional number decoded as %T, want float64", m["f"])
				}
				if _, isFloat := m["big"].(float64); !isFloat {
					t.Errorf("integer beyond int64 decoded as %T, want float64", m["big"])
				}
			}
		})
	}
}

func TestHTTPFetchIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var got []string
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+strings.Join(r.Header.Values("Idempotency-Key"), "|"))
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(503)
		}
	}))
	typ, _ := Lookup("http_fetch")
	tests := []struct {
		name string
		with map[string]any
		want string
	}{
		{"POST auto", map[string]any{"method": "POST", "body": "x"}, "POST run1-node-0"},
		{"POST explicit auto", map[string]any{"method": "POST", "idempotency_key": "auto"}, "POST run1-node-0"},
		{"DELETE true means auto", map[string]any{"method": "DELETE", "idempotency_key": true}, "DELETE run1-node-0"},
		{"GET auto sends none", map[string]any{}, "GET "},
		{"HEAD auto sends none", map[string]any{"method": "HEAD"}, "HEAD "},
		{"literal key", map[string]any{"method": "PUT", "idempotency_key": "k-42"}, "PUT k-42"},
		{"literal key on GET", map[string]any{"idempotency_key": "k-43"}, "GET k-43"},
		{"disabled by false", map[string]any{"method": "POST", "idempotency_key": false}, "POST "},
		{"disabled by empty", map[string]any{"method": "POST", "idempotency_key": ""}, "POST "},
		{"header wins", map[string]any{"method": "POST", "headers": map[string]any{"Idempotency-Key": "mine"}}, "POST mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			tt.with["url"] = env.srv.URL
			if _, err := env.run(context.Background(), tt.with); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("server saw %q, want [%q]", got, tt.want)
			}
		})
	}
	t.Run("same key across attempts", func(t *testing.T) {
		mu.Lock()
		got = nil
		mu.Unlock()
		for attempt := 1; attempt <= 2; attempt++ {
			_, err := typ.Run(context.Background(), &Invocation{Attempt: attempt, Index: -1, Host: env.host,
				With: map[string]any{"url": env.srv.URL + "/fail", "method": "POST", "json": map[string]any{"a": 1}}})
			if KindOf(err) != KindStatus {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 || got[0] != "POST run1-node-0" || got[1] != got[0] {
			t.Errorf("server saw %q, want the same key twice", got)
		}
	})
}

func TestHTTPFetchInputErrors(t *testing.T) {
	env := newFetchEnv(t, http.HandlerFunc(fetchEchoHandler))
	u := env.srv.URL
	tests := []struct {
		name string
		with map[string]any
		want string
	}{
		{"missing url", map[string]any{}, "with.url is required"},
		{"url not a string", map[string]any{"url": 3}, "with.url must be a string, got integer"},
		{"relative url", map[string]any{"url": "/x"}, "absolute http:// or https://"},
		{"ftp url", map[string]any{"url": "ftp://h/x"}, "absolute http:// or https://"},
		{"unparsable url", map[string]any{"url": "http://h/%zz"}, "with.url is not a valid URL: invalid URL escape"},
		{"no host", map[string]any{"url": "http:///x"}, "has no host"},
		{"bad method", map[string]any{"url": u, "method": "GE T"}, "not an HTTP method"},
		{"headers not object", map[string]any{"url": u, "headers": "a"}, "with.headers must be an object"},
		{"bad header name", map[string]any{"url": u, "headers": map[string]any{"a b": "x"}}, "not a valid header name"},
		{"header injection", map[string]any{"url": u, "headers": map[string]any{"X": "a\r\nB: c"}}, "line break"},
		{"header object value", map[string]any{"url": u, "headers": map[string]any{"X": map[string]any{}}}, "with.headers.X"},
		{"query not object", map[string]any{"url": u, "query": []any{}}, "with.query must be an object"},
		{"query nested", map[string]any{"url": u, "query": map[string]any{"a": []any{[]any{}}}}, "with.query.a"},
		{"body and json", map[string]any{"url": u, "body": "a", "json": 1}, "exclusive"},
		{"body not string", map[string]any{"url": u, "body": map[string]any{}}, "use json:"},
		{"json not encodable", map[string]any{"url": u, "json": func() {}}, "with.json"},
		{"bad timeout", map[string]any{"url": u, "timeout": "soon"}, "with.timeout"},
		{"number timeout", map[string]any{"url": u, "timeout": 5}, "with.timeout"},
		{"negative timeout", map[string]any{"url": u, "timeout": "-1s"}, "not positive"},
		{"bad max_bytes", map[string]any{"url": u, "max_bytes": "10 parsecs"}, "with.max_bytes"},
		{"negative max_bytes", map[string]any{"url": u, "max_bytes": -1}, "with.max_bytes"},
		{"fractional max_bytes", map[string]any{"url": u, "max_bytes": 1.5}, "with.max_bytes"},
		{"follow not bool", map[string]any{"url": u, "follow_redirects": "yes"}, "follow_redirects must be a boolean"},
		{"expect out of range", map[string]any{"url": u, "expect": 700}, "with.expect"},
		{"expect bad class", map[string]any{"url": u, "expect": "6xx"}, "with.expect"},
		{"expect empty list", map[string]any{"url": u, "expect": []any{}}, "with.expect: empty list"},
		{"expect bad element", map[string]any{"url": u, "expect": []any{200, "ok"}}, "with.expect"},
		{"idempotency key type", map[string]any{"url": u, "idempotency_key": 5}, "idempotency_key must be a string or false"},
		{"unknown field", map[string]any{"url": u, "urls": "x"}, `unknown field "urls"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.run(context.Background(), tt.with)
			e := asFetchError(t, err)
			if e.Kind != KindInput {
				t.Errorf("kind = %q, want input (%v)", e.Kind, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestHTTPFetchURLProblemQuotesNothing: the error of a URL that does not
// parse quotes no piece of it. Redaction replaces a secret's whole value,
// so a fragment such as the `"%ue"` of a secret ending in "Val%ue" would
// leave three of its characters in the message.
func TestHTTPFetchURLProblemQuotesNothing(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1:1/Sec Ret/Val%ue",
		"http://127.0.0.1:x9q7/",
		"http://ho st/",
		"http://[::1/",
		"http://h/\x7fq9",
	} {
		_, err := parseFetch(map[string]any{"url": raw})
		if err == nil {
			t.Errorf("%q parsed", raw)
			continue
		}
		msg := err.Error()
		for _, part := range []string{"%ue", "ue\"", "x9q7", "ho st", "q9", "\""} {
			if strings.Contains(msg, part) {
				t.Errorf("the error of %q quotes %q: %s", raw, part, msg)
			}
		}
		if !strings.HasPrefix(msg, "http_fetch: with.url is not a valid URL: ") {
			t.Errorf("error of %q: %s", raw, msg)
		}
	}
}

func TestHTTPFetchCancelNoLeak(t *testing.T) {
	release := make(chan struct{})
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = env.run(ctx, map[string]any{"url": env.srv.URL, "method": "POST"})
		}()
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	for i, err := range errs {
		if KindOf(err) != KindCancelled {
			t.Errorf("invocation %d: %v, want kind cancelled", i, err)
		}
	}
}

func TestHTTPFetchWithoutHostClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("User-Agent")+" "+r.Header.Get("Idempotency-Key"))
	}))
	defer srv.Close()
	typ, _ := Lookup("http_fetch")
	res, err := typ.Run(context.Background(), &Invocation{With: map[string]any{"url": srv.URL, "method": "POST"}})
	if err != nil {
		t.Fatal(err)
	}
	fetchEq(t, res.(map[string]any)["body"], "lgx/dev ")
	fetchDefaultHTTPClient().CloseIdleConnections()
}

func TestHTTPFetchDoc(t *testing.T) {
	typ, ok := Lookup("http_fetch")
	if !ok {
		t.Fatal("http_fetch is not registered")
	}
	d := typ.Doc()
	if d.Summary == "" {
		t.Error("no summary")
	}
	known := map[string]bool{"string": true, "integer": true, "number": true, "boolean": true, "duration": true,
		"bytes": true, "list": true, "object": true, "messages": true, "any": true}
	var names []string
	for _, f := range d.With {
		names = append(names, f.Name)
		if !known[f.Type] || f.Doc == "" {
			t.Errorf("with.%s: type %q, doc %q", f.Name, f.Type, f.Doc)
		}
		if fetchFieldIndex(f.Name) < 0 {
			t.Errorf("with.%s is documented but refused by Run", f.Name)
		}
	}
	if len(d.With) != numFetchFields {
		t.Errorf("%d with fields documented, Run reads %d", len(d.With), numFetchFields)
	}
	fetchEq(t, strings.Join(names, " "), "url method headers query body json timeout max_bytes follow_redirects expect idempotency_key")
	var results []string
	for _, f := range d.Result {
		results = append(results, f.Name)
		if !known[f.Type] || f.Doc == "" {
			t.Errorf("result.%s: type %q, doc %q", f.Name, f.Type, f.Doc)
		}
	}
	fetchEq(t, strings.Join(results, " "), "url status headers body json truncated duration_ms")
	if len(d.OneOf) != 1 || strings.Join(d.OneOf[0].Fields, "|") != "body|json" || d.OneOf[0].Required {
		t.Errorf("OneOf = %+v, want optional body|json", d.OneOf)
	}
	for _, f := range d.With {
		if f.Default == "" {
			continue
		}
		// Defaults as documented must be accepted by Run's parser.
		var v any = f.Default
		switch f.Default {
		case "true":
			v = true
		case "{}":
			v = map[string]any{}
		}
		if _, err := parseFetch(map[string]any{"url": "http://h/", f.Name: v}); err != nil {
			t.Errorf("documented default %s=%q is refused: %v", f.Name, f.Default, err)
		}
	}
}

func fetchEq(t *testing.T, got, want any) {
	t.Helper()
	if got != want {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func fetchEqJSON(t *testing.T, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestBodyExcerpt(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes, two per rune
	tests := []struct {
		name, body, want string
	}{
		{"short", "not found", "not found"},
		{"whitespace collapsed", "  a\n\tb  \r\n c ", "a b c"},
		{"empty", "", ""},
		{"cut at a rune boundary", long, strings.Repeat("é", 100) + "…"},
		{"cut mid-rune backs off", "x" + long, "x" + strings.Repeat("é", 99) + "…"},
		{"invalid UTF-8 replaced", "a\xffb", "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bodyExcerpt([]byte(tt.body), 200)
			fetchEq(t, got, tt.want)
			if !utf8.ValidString(got) || len(strings.TrimSuffix(got, "…")) > 200 {
				t.Errorf("excerpt %q is invalid or longer than 200 bytes", got)
			}
		})
	}
}

func TestReadBodyAtMostHugeLimit(t *testing.T) {
	data, truncated, err := readBodyAtMost(strings.NewReader("abc"), math.MaxInt64, -1)
	if err != nil || truncated || string(data) != "abc" {
		t.Errorf("got %q, %v, %v; want \"abc\", false, nil", data, truncated, err)
	}
}

func TestIsJSONContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		{"application/json", true},
		{"Application/JSON; charset=utf-8", true},
		{" application/json ;charset=utf-8", true},
		{"application/problem+json", true},
		{"application/vnd.api+json; ext=x", true},
		{"text/plain", false},
		{"TEXT/HTML; charset=utf-8", false},
		{"application/jsonx", false},
		{"application/json garbage", false},
		{"", false},
		{"application/x+json; =bad", false},
	}
	for _, tt := range tests {
		if got := isJSONContentType(tt.ct); got != tt.want {
			t.Errorf("isJSONContentType(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}
