package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// TestRetryMaxWaitDelay: retry.max_wait bounds backoff, lets a Retry-After
// up to it through, and turns a longer one into an error naming the wait
// asked for, keeping the attempt's kind and status.
func TestRetryMaxWaitDelay(t *testing.T) {
	p := retryPolicy{attempts: 10, backoff: 10 * time.Second, maxBackoff: time.Hour, maxWait: 2 * time.Second}
	for attempt := 1; attempt < 8; attempt++ {
		d, err := p.delay(attempt, errors.New("x"))
		if err != nil || d > 2*time.Second || d < time.Second {
			t.Fatalf("attempt %d: delay %s, %v; want within [1s, 2s]", attempt, d, err)
		}
	}
	p.maxWait = 5 * time.Minute
	tests := []struct {
		after   time.Duration
		want    time.Duration
		wantErr string
	}{
		{after: 7 * time.Second, want: 7 * time.Second},
		{after: 5 * time.Minute, want: 5 * time.Minute},
		{after: time.Hour, wantErr: "server asked to retry after 1h0m0s, beyond retry.max_wait 5m: "},
		{after: 24*time.Hour - 500*time.Millisecond, wantErr: "server asked to retry after 23h59m59.5s, beyond retry.max_wait 5m: "},
	}
	for _, tt := range tests {
		ra := &nodes.Error{Kind: nodes.KindStatus, Status: 429, RetryAfter: tt.after, Err: errors.New("HTTP 429")}
		d, err := p.delay(1, ra)
		switch {
		case tt.wantErr == "" && (err != nil || d != tt.want):
			t.Errorf("Retry-After %s: delay %s, %v; want %s", tt.after, d, err, tt.want)
		case tt.wantErr == "":
		case err == nil || !strings.HasPrefix(err.Error(), tt.wantErr):
			t.Errorf("Retry-After %s: err = %v, want prefix %q", tt.after, err, tt.wantErr)
		case nodes.KindOf(err) != nodes.KindStatus || !nodes.Matches(err, "429"):
			t.Errorf("Retry-After %s: err %v lost its kind or status", tt.after, err)
		}
	}
}

// TestRetryMaxWaitRun: in a run, a Retry-After beyond retry.max_wait fails
// the node at once after one attempt; waits within it happen (on the fake
// clock of a synctest bubble) and each is a retry event.
func TestRetryMaxWaitRun(t *testing.T) {
	tests := []struct {
		name      string
		group     string // the probe group of with
		retry     string
		with      string
		wantErr   string
		calls     int
		delays    []int64 // DelayMS of the retry events; -1 = at most maxDelay
		maxDelay  int64
		minTime   time.Duration
		maxTime   time.Duration
		wantState bool
	}{
		{
			name:    "Retry-After of an hour beyond the default 5m",
			retry:   `{attempts: 3, on: ["429"]}`,
			with:    `{fail: status, status: 429, retry_after_ms: 3600000, group: mw1, value: 1}`,
			group:   "mw1",
			wantErr: "server asked to retry after 1h0m0s, beyond retry.max_wait 5m",
			calls:   1, maxTime: 0,
		},
		{
			name:    "Retry-After beyond an explicit max_wait",
			retry:   `{attempts: 3, on: ["429"], max_wait: 30s}`,
			with:    `{fail: status, status: 429, retry_after_ms: 60000, group: mw2, value: 1}`,
			group:   "mw2",
			wantErr: "server asked to retry after 1m0s, beyond retry.max_wait 30s",
			calls:   1, maxTime: 0,
		},
		{
			name:   "Retry-After within max_wait is waited",
			retry:  `{attempts: 3, on: ["429"]}`,
			with:   `{fail: status, status: 429, fail_times: 1, retry_after_ms: 120000, group: mw3, value: 1}`,
			group:  "mw3",
			calls:  2,
			delays: []int64{120000}, minTime: 2 * time.Minute, maxTime: 2 * time.Minute, wantState: true,
		},
		{
			name:   "backoff above max_wait is cut to it",
			retry:  `{attempts: 3, on: ["429"], backoff: 10m, max_backoff: 1h, max_wait: 3s}`,
			with:   `{fail: status, status: 429, fail_times: 2, group: mw4, value: 1}`,
			group:  "mw4",
			calls:  3,
			delays: []int64{-1, -1}, maxDelay: 3000, minTime: 3 * time.Second, maxTime: 6 * time.Second, wantState: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := resetGroup(tt.group)
				log := &eventLog{}
				start := time.Now()
				res, err := runYAML(t, `
lgx: 1
name: t
state:
  v: integer
nodes:
  call:
    type: probe
    retry: `+tt.retry+`
    with: `+tt.with+`
    output: {v: "${{ result }}"}
edges:
  - {from: START, to: call}
`, nil, func(o *Options) { o.Sink = log })
				elapsed := time.Since(start)
				if tt.wantErr != "" {
					var ne *NodeError
					if !errors.As(err, &ne) || !strings.Contains(err.Error(), tt.wantErr) || ne.Node != "call" {
						t.Fatalf("err = %v, want a NodeError of call containing %q", err, tt.wantErr)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if tt.wantState && res.State["v"] != 1 {
					t.Errorf("state v = %v, want 1", res.State["v"])
				}
				if g.calls != tt.calls {
					t.Errorf("attempts = %d, want %d", g.calls, tt.calls)
				}
				retries := log.named(EventRetry)
				if len(retries) != len(tt.delays) {
					t.Fatalf("%d retry events, want %d", len(retries), len(tt.delays))
				}
				for i, e := range retries {
					want := tt.delays[i]
					if want == -1 && (e.DelayMS > tt.maxDelay || e.DelayMS <= 0) || want >= 0 && e.DelayMS != want {
						t.Errorf("retry event %d: delay %dms, want %d (max %d)", i, e.DelayMS, want, tt.maxDelay)
					}
				}
				if elapsed < tt.minTime || elapsed > tt.maxTime {
					t.Errorf("took %s on the fake clock, want within [%s, %s]", elapsed, tt.minTime, tt.maxTime)
				}
			})
		})
	}
}

// TestRetryOnOutputFailure: a type or expression error in a node's output
// fails the node (SPEC §3.2) and is retried when retry.on names its kind:
// the request is sent again until the answer has the shape the output
// needs. A kind `on` does not name fails at the first attempt, as does
// the last attempt's failure.
func TestRetryOnOutputFailure(t *testing.T) {
	tests := []struct {
		name     string
		on       string
		output   string
		wantN    any // the state's n, or nil when the run fails
		wantKind nodes.Kind
		calls    int64
	}{
		{name: "type error retried", on: "[type]", output: `"${{ result.json.n >= 3 ? result.json.n : 'not yet' }}"`, wantN: 3, calls: 3},
		{name: "expr error retried", on: "[expr]", output: `"${{ result.json.n >= 3 ? result.json.n : result.json.missing.deeper }}"`, wantN: 3, calls: 3},
		{name: "type error not named", on: "[expr]", output: `"${{ result.json.n >= 3 ? result.json.n : 'not yet' }}"`, wantKind: nodes.KindType, calls: 1},
		{name: "default on", on: "", output: `"${{ result.json.n >= 3 ? result.json.n : 'not yet' }}"`, wantKind: nodes.KindType, calls: 1},
		{name: "retries run out", on: "[type]", output: `"${{ result.json.n >= 9 ? result.json.n : 'not yet' }}"`, wantKind: nodes.KindType, calls: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, hits := countingServer(t)
			on := ""
			if tt.on != "" {
				on = ", on: " + tt.on
			}
			g := compileYAML(t, `
lgx: 1
name: r
state:
  n: {type: integer}
nodes:
  f:
    type: http_fetch
    retry: {attempts: 4, backoff: 1ms`+on+`}
    with: {url: "`+ts.URL+`"}
    output: {n: `+tt.output+`}
edges:
  - {from: START, to: f}
`)
			var sink eventLog
			res, err := Run(context.Background(), g, Options{Store: store.NewMemory(), Environ: []string{}, Sink: &sink})
			if got := hits.Load(); got != tt.calls {
				t.Errorf("%d requests, want %d", got, tt.calls)
			}
			if tt.wantN != nil {
				if err != nil || res.State["n"] != tt.wantN {
					t.Fatalf("n = %v, err %v; want %v", res.State["n"], err, tt.wantN)
				}
				retries := sink.named(EventRetry)
				for _, e := range retries {
					if want := strings.Trim(tt.on, "[]"); e.Kind != want {
						t.Errorf("retry event of kind %q, want %q", e.Kind, want)
					}
				}
				if len(retries) != int(tt.calls)-1 {
					t.Errorf("%d retry events, want %d", len(retries), tt.calls-1)
				}
				return
			}
			if err == nil || nodes.KindOf(err) != tt.wantKind {
				t.Fatalf("err = %v (kind %s), want kind %s", err, nodes.KindOf(err), tt.wantKind)
			}
		})
	}
}

// TestRetryOnToolOutputFailure: a tool's own `output` is part of its
// call's attempt when the tool's retry.on names a kind it can fail with
// (SPEC §3.2, §5.5): a result it cannot read is fetched again; otherwise
// the model is answered with the error, as before.
func TestRetryOnToolOutputFailure(t *testing.T) {
	tests := []struct {
		name    string
		on      string
		want    int // the n the output reads
		content string
		calls   int64
	}{
		{name: "expr error retried", on: ", on: [expr]", want: 3, content: "3", calls: 3},
		{name: "not named", on: "", want: 3, content: "error: tool count: output: ", calls: 1},
		{name: "retries run out", on: ", on: [expr]", want: 9, content: "error: tool count: output: ", calls: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, hits := countingServer(t)
			g := compileYAML(t, fmt.Sprintf(`
lgx: 1
name: r
state:
  msgs: {type: list, reducer: append, default: []}
%snodes:
  act:
    type: tools
    with: {calls: [{id: c1, name: count, arguments: {}}]}
    output: {msgs: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
`, countTool(tt.on, ts.URL, tt.want)))
			res, err := Run(context.Background(), g, Options{Store: store.NewMemory(), Environ: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			if got := hits.Load(); got != tt.calls {
				t.Errorf("%d requests, want %d", got, tt.calls)
			}
			msgs, _ := res.State["msgs"].([]any)
			if len(msgs) != 1 {
				t.Fatalf("msgs = %v, want one tool message", res.State["msgs"])
			}
			content, _ := msgs[0].(map[string]any)["content"].(string)
			if !strings.HasPrefix(content, tt.content) {
				t.Errorf("tool message %q, want it to start with %q", content, tt.content)
			}
		})
	}
}

// countTool is a tools block with the tool count: a GET of url, retried
// up to 4 attempts (on, when not "", adds to the retry block: ", on:
// [expr]"), whose output fails until the answer's n reaches want.
func countTool(on, url string, want int) string {
	return fmt.Sprintf(`tools:
  count:
    description: Count
    parameters: {type: object}
    node:
      type: http_fetch
      retry: {attempts: 4, backoff: 1ms%s}
      with: {url: "%s"}
    output: "${{ result.json.n >= %d ? string(result.json.n) : result.json.missing.deeper }}"
`, on, url, want)
}

// countingServer answers every request with {"n": K}, K counting the
// requests from 1; hits is K so far.
func countingServer(t *testing.T) (ts *httptest.Server, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n": %d}`, hits.Add(1))
	}))
	t.Cleanup(ts.Close)
	return ts, hits
}
