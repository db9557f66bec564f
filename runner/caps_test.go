package runner

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// The in-flight maximum observed equals the cap, for every kind of cap,
// with for_each and with retries.
func TestCapsMaxInFlightEqualsCap(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		conc  int
		group string
		want  int
	}{
		{"global cap over for_each", `
lgx: 1
name: t
config: {concurrency: 3}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..12 }}", with: {sleep_ms: 5, group: g1}}
edges:
  - {from: START, to: f}
`, 0, "g1", 3},
		{"global cap across fan-out", `
lgx: 1
name: t
config: {concurrency: 2}
state: {}
nodes:
  a: {type: probe, with: {sleep_ms: 5, group: g2}}
  b: {type: probe, with: {sleep_ms: 5, group: g2}}
  c: {type: probe, with: {sleep_ms: 5, group: g2}}
  d: {type: probe, with: {sleep_ms: 5, group: g2}}
edges:
  - {from: START, to: [a, b, c, d]}
`, 0, "g2", 2},
		{"--concurrency overrides config", `
lgx: 1
name: t
config: {concurrency: 10}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..8 }}", with: {sleep_ms: 5, group: g3}}
edges:
  - {from: START, to: f}
`, 4, "g3", 4},
		{"per-node cap", `
lgx: 1
name: t
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..10 }}", concurrency: 3, with: {sleep_ms: 5, group: g4}}
edges:
  - {from: START, to: f}
`, 0, "g4", 3},
		{"pool shared by two nodes", `
lgx: 1
name: t
pools:
  web: {concurrency: 2}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..5 }}", pool: web, with: {sleep_ms: 5, group: g5}}
  h: {type: probe, for_each: "${{ 1..5 }}", pool: web, with: {sleep_ms: 5, group: g5}}
edges:
  - {from: START, to: [f, h]}
`, 0, "g5", 2},
		{"retries hold the cap per attempt", `
lgx: 1
name: t
state: {}
nodes:
  f:
    type: probe
    for_each: "${{ 1..6 }}"
    concurrency: 2
    retry: {attempts: 3, backoff: 1ms, max_backoff: 2ms}
    with: {sleep_ms: 3, group: g6, fail: network, fail_times: 2}
edges:
  - {from: START, to: f}
`, 0, "g6", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := resetGroup(tt.group)
			res, err := runYAML(t, tt.src, nil, func(o *Options) { o.Concurrency = tt.conc })
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != store.StatusCompleted {
				t.Fatalf("status %s", res.Status)
			}
			if g.max != tt.want {
				t.Errorf("max in flight = %d, want %d (calls %d)", g.max, tt.want, g.calls)
			}
		})
	}
}

// Waiting for a cap is reported as a wait event and does not count against
// the node timeout. It runs on the fake clock of a synctest bubble, so a
// loaded machine cannot push a 40ms attempt past its 60ms timeout.
func TestCapWaitIsNotTimedAndIsVisible(t *testing.T) {
	synctest.Test(t, testCapWaitIsNotTimedAndIsVisible)
}

func testCapWaitIsNotTimedAndIsVisible(t *testing.T) {
	resetGroup("w1")
	rec := &eventLog{}
	start := time.Now()
	res, err := runYAML(t, `
lgx: 1
name: t
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..4 }}", concurrency: 1, timeout: 60ms, with: {sleep_ms: 40, group: w1}}
edges:
  - {from: START, to: f}
`, nil, func(o *Options) { o.Sink = rec })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusCompleted {
		t.Fatalf("status %s", res.Status)
	}
	// The four 40ms items run one after the other, each waiting for the
	// previous one longer than the 60ms timeout.
	if el := time.Since(start); el != 160*time.Millisecond {
		t.Errorf("4 items of 40ms at concurrency 1 took %s, want 160ms", el)
	}
	waits := rec.named(EventWait)
	if len(waits) == 0 || waits[0].Waiting != "node" {
		t.Errorf("wait events = %+v, want some waiting for node", waits)
	}
}

// A pool with a rate spaces attempts by the refill interval after the burst.
// On the fake clock of a synctest bubble the spacing is exact.
func TestPoolRateSpacing(t *testing.T) {
	synctest.Test(t, testPoolRateSpacing)
}

func testPoolRateSpacing(t *testing.T) {
	g := resetGroup("r1")
	start := time.Now()
	_, err := runYAML(t, `
lgx: 1
name: t
pools:
  api: {rate: 50/s, burst: 1}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..5 }}", pool: api, with: {group: r1}}
edges:
  - {from: START, to: f}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 5 attempts, burst 1, 20ms apart: 80ms in total.
	if el := time.Since(start); el != 80*time.Millisecond {
		t.Errorf("5 attempts at 50/s burst 1 took %s, want 80ms", el)
	}
	if len(g.starts) != 5 {
		t.Fatalf("%d calls", len(g.starts))
	}
	starts := slices.SortedFunc(slices.Values(g.starts), time.Time.Compare)
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d != 20*time.Millisecond {
			t.Errorf("attempts %d and %d started %s apart, want 20ms", i-1, i, d)
		}
	}
}

func TestRetryTimeoutAndRetryAfter(t *testing.T) {
	tests := []struct {
		name     string
		with     string
		retry    string
		timeout  string
		wantErr  string
		wantKind nodes.Kind
		calls    int
		minTime  time.Duration
		maxTime  time.Duration
	}{
		{name: "retryable kind retried until success", with: "{fail: network, fail_times: 2}",
			retry: "{attempts: 3, backoff: 1ms}", calls: 3},
		{name: "attempts exhausted", with: "{fail: network}", retry: "{attempts: 3, backoff: 1ms}",
			wantErr: "probe failure 3", wantKind: nodes.KindNetwork, calls: 3},
		{name: "404 not retried by default", with: "{fail: status, status: 404}", retry: "{attempts: 3, backoff: 1ms}",
			wantErr: "probe failure 1", wantKind: nodes.KindStatus, calls: 1},
		{name: "5xx retried by default", with: "{fail: status, status: 503, fail_times: 1}", retry: "{attempts: 3, backoff: 1ms}",
			calls: 2},
		{name: "retry.on names a kind", with: "{fail: schema, fail_times: 1}", retry: "{attempts: 2, backoff: 1ms, on: [schema]}",
			calls: 2},
		{name: "timeout per attempt is retried", with: "{sleep_ms: 200}", retry: "{attempts: 2, backoff: 1ms}", timeout: "20ms",
			wantErr: "timed out", wantKind: nodes.KindTimeout, calls: 2,
			// two 20ms attempts and a backoff jittered within [0.5ms, 1ms]
			minTime: 40*time.Millisecond + 500*time.Microsecond, maxTime: 41 * time.Millisecond},
		{name: "Retry-After honoured", with: "{fail: status, status: 429, fail_times: 1, retry_after_ms: 120}",
			retry: "{attempts: 2, backoff: 1ms, max_backoff: 2ms}", calls: 2, minTime: 120 * time.Millisecond, maxTime: 120 * time.Millisecond},
		{name: "backoff doubles", with: "{fail: network, fail_times: 3}", retry: "{attempts: 4, backoff: 20ms, max_backoff: 1s}",
			calls: 4, minTime: (10 + 20 + 40) * time.Millisecond, maxTime: (20 + 40 + 80) * time.Millisecond},
		{name: "panic is recovered", with: "{panic: true}", retry: "{attempts: 3}",
			wantErr: "probe panicked", wantKind: nodes.KindPanic, calls: 1},
	}
	for i, tt := range tests {
		// The fake clock of a synctest bubble makes the durations exact
		// fake-clock durations, which a loaded machine cannot stretch.
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				grp := fmt.Sprintf("rt%d", i)
				g := resetGroup(grp)
				with := strings.TrimSuffix(tt.with, "}") + ", group: " + grp + "}"
				to := ""
				if tt.timeout != "" {
					to = "\n    timeout: " + tt.timeout
				}
				src := `
lgx: 1
name: t
state: {}
nodes:
  f:
    type: probe
    with: ` + with + `
    retry: ` + tt.retry + to + `
edges:
  - {from: START, to: f}
`
				start := time.Now()
				_, err := runYAML(t, src, nil)
				el := time.Since(start)
				if tt.wantErr != "" {
					var ne *NodeError
					if !errors.As(err, &ne) || !strings.Contains(err.Error(), tt.wantErr) || ne.Kind != tt.wantKind {
						t.Fatalf("err = %v (%T), want NodeError %q kind %s", err, err, tt.wantErr, tt.wantKind)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if g.calls != tt.calls {
					t.Errorf("calls = %d, want %d", g.calls, tt.calls)
				}
				if el < tt.minTime {
					t.Errorf("took %s, want >= %s", el, tt.minTime)
				}
				if tt.maxTime > 0 && el > tt.maxTime {
					t.Errorf("took %s, want <= %s", el, tt.maxTime)
				}
			})
		})
	}
}

func TestRetryDelay(t *testing.T) {
	p := retryPolicy{attempts: 10, backoff: 100 * time.Millisecond, maxBackoff: time.Second, maxWait: time.Minute}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		for range 20 {
			d, err := p.delay(attempt, errors.New("x"))
			if err != nil || d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
	ra := &nodes.Error{Kind: nodes.KindStatus, Status: 429, RetryAfter: 7 * time.Second}
	if d, err := p.delay(1, fmt.Errorf("wrapped: %w", ra)); err != nil || d != 7*time.Second {
		t.Errorf("Retry-After delay = %s, want 7s", d)
	}
}

// A failing node cancels its siblings in flight; writes of the nodes that
// finished are recorded but the step is not applied. On the fake clock of a
// synctest bubble the run ends exactly when bad fails.
func TestFailureCancelsSiblings(t *testing.T) {
	synctest.Test(t, testFailureCancelsSiblings)
}

func testFailureCancelsSiblings(t *testing.T) {
	resetGroup("c1")
	st := store.NewMemory()
	start := time.Now()
	res, err := runYAML(t, `
lgx: 1
name: t
state:
  done: {type: list, reducer: append, default: []}
nodes:
  fast: {type: probe, with: {value: 1, group: c1}, output: {done: fast}}
  slow: {type: probe, with: {block: true, group: c1}, output: {done: slow}}
  bad: {type: probe, with: {sleep_ms: 20, fail: status, status: 400, group: c1}}
edges:
  - {from: START, to: [fast, slow, bad]}
`, nil, func(o *Options) { o.Store = st })
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != "bad" || ne.Index != -1 {
		t.Fatalf("err = %v, want NodeError for bad", err)
	}
	if el := time.Since(start); el != 20*time.Millisecond {
		t.Fatalf("run ended after %s, want 20ms when bad fails: siblings were not cancelled", el)
	}
	if res.Status != store.StatusFailed {
		t.Errorf("status %s", res.Status)
	}
	if !reflect.DeepEqual(res.State["done"], []any{}) {
		t.Errorf("state applied despite failure: %v", res.State["done"])
	}
	invs, _ := st.Invocations(context.Background(), res.RunID)
	got := map[string]string{}
	for _, inv := range invs {
		got[inv.Node] = inv.Status
	}
	if got["fast"] != store.InvocationOK || got["bad"] != store.InvocationFailed {
		t.Errorf("recorded invocations %v", got)
	}
	if _, ok := got["slow"]; ok {
		t.Errorf("cancelled sibling recorded: %v", got)
	}
}

func TestCancellation(t *testing.T) {
	resetGroup("x1")
	ctx, cancel := context.WithCancel(context.Background())
	g := compileYAML(t, `
lgx: 1
name: t
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..3 }}", with: {block: true, group: x1}}
edges:
  - {from: START, to: f}
`)
	time.AfterFunc(30*time.Millisecond, cancel)
	st := store.NewMemory()
	res, err := Run(ctx, g, Options{Store: st, Environ: []string{}})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("err = %v, want ErrCancelled", err)
	}
	if res.Status != store.StatusCancelled {
		t.Errorf("status %s", res.Status)
	}
	rec, _ := st.GetRun(context.Background(), res.RunID)
	if rec.Status != store.StatusCancelled {
		t.Errorf("stored status %s", rec.Status)
	}
}

func TestRunTimeout(t *testing.T) {
	resetGroup("to1")
	res, err := runYAML(t, `
lgx: 1
name: t
config: {timeout: 50ms}
state: {}
nodes:
  f: {type: probe, with: {block: true, group: to1}}
edges:
  - {from: START, to: f}
`, nil)
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want TimeoutError", err)
	}
	if res.Status != store.StatusFailed || !res.Status.Resumable() {
		t.Errorf("status %s", res.Status)
	}
}
