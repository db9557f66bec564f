package nodes

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/sync/errgroup"
)

// BenchmarkHTTPThroughput compares 2,000 GETs to a local server, 64 in
// flight, made through http_fetch's Run (shared client, per-request
// redirect copy, bounded body read, result map) against plain net/http with
// one tuned client. One iteration is the whole batch; req/s is reported.
func BenchmarkHTTPThroughput(b *testing.B) {
	const requests, concurrency = 2000, 64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "a small body of sixty-four bytes, like a short API answer.......")
	}))
	defer srv.Close()

	batch := func(b *testing.B, get func(ctx context.Context) error) {
		g, ctx := errgroup.WithContext(context.Background())
		g.SetLimit(concurrency)
		for range requests {
			g.Go(func() error { return get(ctx) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("http_fetch", func(b *testing.B) {
		host := &fetchTestHost{client: NewHTTPClient("bench"), key: "k"}
		defer host.client.CloseIdleConnections()
		typ, _ := Lookup("http_fetch")
		with := map[string]any{"url": srv.URL + "/item"}
		for b.Loop() {
			batch(b, func(ctx context.Context) error {
				_, err := typ.Run(ctx, &Invocation{Index: -1, Attempt: 1, With: with, Host: host})
				return err
			})
		}
		b.ReportMetric(float64(requests*b.N)/b.Elapsed().Seconds(), "req/s")
	})

	b.Run("plain", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
		defer client.CloseIdleConnections()
		for b.Loop() {
			batch(b, func(ctx context.Context) error {
				req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/item", nil)
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.ReadAll(resp.Body)
				return err
			})
		}
		b.ReportMetric(float64(requests*b.N)/b.Elapsed().Seconds(), "req/s")
	})
}
