package runner

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"
)

// TestRunClosesItsHTTPConnections: a run that builds its own client leaves
// no keep-alive connection (and so no transport goroutine) behind, while
// the server that served it is still up.
func TestRunClosesItsHTTPConnections(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer ts.Close()
	ignore := goleak.IgnoreCurrent()
	urls := make([]any, 8)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/%d", ts.URL, i)
	}
	res, err := runYAML(t, `
lgx: 1
name: t
state:
  urls: {type: list}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  get:
    type: http_fetch
    for_each: ${{ state.urls }}
    with: {url: "${{ item }}"}
    output: {n: 1}
edges:
  - {from: START, to: get}
`, map[string]any{"urls": urls})
	if err != nil || res.State["n"] != 8 {
		t.Fatalf("run: %v, n = %v", err, res.State["n"])
	}
	goleak.VerifyNone(t, ignore)
}
