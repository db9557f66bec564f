package nodes

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
)

func TestNewHTTPClientSettings(t *testing.T) {
	c := NewHTTPClient("1.0.0")
	if c.Timeout != 0 {
		t.Errorf("client Timeout = %v; per-attempt deadlines come from ctx", c.Timeout)
	}
	ua, ok := c.Transport.(*userAgentTransport)
	if !ok {
		t.Fatalf("Transport is %T", c.Transport)
	}
	b := ua.base
	if !b.ForceAttemptHTTP2 || b.Proxy == nil || b.DisableKeepAlives || b.TLSClientConfig != nil {
		t.Errorf("transport: ForceAttemptHTTP2=%v Proxy set=%v DisableKeepAlives=%v TLSClientConfig=%v",
			b.ForceAttemptHTTP2, b.Proxy != nil, b.DisableKeepAlives, b.TLSClientConfig)
	}
	if reflect.ValueOf(b.Proxy).Pointer() != reflect.ValueOf(http.ProxyFromEnvironment).Pointer() {
		t.Error("Proxy is not http.ProxyFromEnvironment")
	}
	if b.MaxIdleConnsPerHost < 64 || b.MaxIdleConns < b.MaxIdleConnsPerHost {
		t.Errorf("idle pool too small: per host %d, total %d", b.MaxIdleConnsPerHost, b.MaxIdleConns)
	}
}

func TestHTTPClientUserAgent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := r.Header["User-Agent"]
		if !ok {
			v = []string{"<none>"}
		}
		_, _ = io.WriteString(w, v[0])
	}))
	defer srv.Close()
	c := NewHTTPClient("2.0.1")
	defer c.CloseIdleConnections()
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"default", nil, "lgx/2.0.1"},
		{"request's own", http.Header{"User-Agent": {"curl/8"}}, "curl/8"},
		{"explicitly empty is kept empty", http.Header{"User-Agent": {""}}, "<none>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL, nil)
			if tt.header != nil {
				req.Header = tt.header
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fetchEq(t, string(b), tt.want)
			if tt.header == nil && req.Header.Get("User-Agent") != "" {
				t.Error("RoundTrip modified the caller's request")
			}
		})
	}
	if got := NewHTTPClient("").Transport.(*userAgentTransport).ua; got != "lgx/dev" {
		t.Errorf("empty version gives %q", got)
	}
}

// TestHTTPClientReusesConnections checks keep-alive under concurrency: two
// waves of 64 concurrent requests open at most 64 connections, where a
// stock transport (2 idle connections per host) would redial most of them.
func TestHTTPClientReusesConnections(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var conns atomic.Int64
	gate := make(chan struct{})
	var arrived sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wave") == "1" {
			arrived.Done()
			<-gate // hold every request so that the first wave needs 64 connections
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewHTTPClient("t")
	defer c.CloseIdleConnections()

	wave := func(n string) error {
		var g errgroup.Group
		for range 64 {
			g.Go(func() error {
				resp, err := c.Get(srv.URL + "/?wave=" + n)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(io.Discard, resp.Body)
				return err
			})
		}
		return g.Wait()
	}
	arrived.Add(64)
	errc := make(chan error, 1)
	go func() { errc <- wave("1") }()
	arrived.Wait()
	close(gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := wave("2"); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n > 64 {
		t.Errorf("opened %d connections for two waves of 64; idle connections were not kept", n)
	}
}

func TestHTTPClientRedirectPolicy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mux := http.NewServeMux()
	mux.HandleFunc("/hop/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Path[len("/hop/"):])
		if n == 0 {
			_, _ = io.WriteString(w, "done")
			return
		}
		http.Redirect(w, r, "/hop/"+strconv.Itoa(n-1), http.StatusTemporaryRedirect)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base := NewHTTPClient("t")
	defer base.CloseIdleConnections()

	get := func(c *http.Client, hops int) (*http.Response, error) {
		resp, err := c.Get(srv.URL + "/hop/" + strconv.Itoa(hops))
		if resp != nil {
			resp.Body.Close()
		}
		return resp, err
	}
	for _, c := range []*http.Client{base, WithRedirectPolicy(base, true)} {
		if resp, err := get(c, MaxRedirects); err != nil || resp.StatusCode != 200 {
			t.Errorf("%d hops: %v", MaxRedirects, err)
		}
		if _, err := get(c, MaxRedirects+1); !errors.Is(err, ErrTooManyRedirects) {
			t.Errorf("%d hops: err = %v, want ErrTooManyRedirects", MaxRedirects+1, err)
		}
	}
	noFollow := WithRedirectPolicy(base, false)
	if resp, err := get(noFollow, 3); err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("not following: resp %v, err %v; want the 307 itself", resp, err)
	}
	if noFollow.Transport != base.Transport {
		t.Error("the copy does not share the connection pool")
	}
	if resp, err := get(base, 3); err != nil || resp.StatusCode != 200 {
		t.Errorf("the original's policy changed: %v", err)
	}
}

func TestHTTPClientTLS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	c := NewHTTPClient("t")
	defer c.CloseIdleConnections()
	if _, err := c.Get(srv.URL); err == nil {
		t.Error("a self-signed certificate was accepted: TLS verification is off")
	}

	// Trusting the test CA on a clone of the same transport, HTTP/2 is
	// negotiated.
	tr := c.Transport.(*userAgentTransport).base.Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL, nil)
	resp, err := (&http.Client{Transport: &userAgentTransport{base: tr, ua: "x"}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
}
