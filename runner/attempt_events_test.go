package runner

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAttemptEvents checks that every attempt of a graph invocation is a
// pair attempt_start/attempt_end, in order with node_start, acquired,
// retry and node_end, and that a failed attempt's error is redacted.
func TestAttemptEvents(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			http.Error(w, "busy, token "+r.URL.Query().Get("k"), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer ts.Close()
	src := `
lgx: 1
name: t
secrets: [KEY]
state:
  url: {type: string}
  out: {type: string}
nodes:
  f:
    type: http_fetch
    retry: {attempts: 3, backoff: 1ms, max_backoff: 2ms}
    with: {url: "${{ state.url + '?k=' + secrets.KEY }}"}
    output: {out: "${{ result.body }}"}
edges:
  - {from: START, to: f}
`
	rec := &eventLog{}
	_, err := runYAML(t, src, map[string]any{"url": ts.URL}, func(o *Options) {
		o.Sink = rec
		o.Environ = []string{"KEY=hunter2-secret"}
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	for _, e := range rec.events {
		if e.Node == "f" {
			got = append(got, e)
		}
	}
	want := []struct {
		event   string
		attempt int
		failed  bool
	}{
		{EventNodeStart, 0, false},
		{EventAcquired, 0, false},
		{EventAttemptStart, 1, false},
		{EventAttemptEnd, 1, true},
		{EventRetry, 1, true},
		{EventAttemptStart, 2, false},
		{EventAttemptEnd, 2, true},
		{EventRetry, 2, true},
		{EventAttemptStart, 3, false},
		{EventAttemptEnd, 3, false},
		{EventNodeEnd, 3, false},
	}
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("%s attempt %d kind %q", e.Event, e.Attempt, e.Kind)
		}
		t.Fatalf("%d events of f, want %d", len(got), len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Event != w.event || e.Attempt != w.attempt {
			t.Errorf("event %d = %s attempt %d, want %s attempt %d", i, e.Event, e.Attempt, w.event, w.attempt)
		}
		if (e.Kind != "") != w.failed || (e.Error != "") != w.failed {
			t.Errorf("event %d (%s %d): kind %q error %q, want failed=%v", i, e.Event, e.Attempt, e.Kind, e.Error, w.failed)
		}
		if e.Event == EventAttemptEnd && w.failed && e.Kind != "status" {
			t.Errorf("attempt_end %d kind %q, want the 503's kind", e.Attempt, e.Kind)
		}
		if strings.Contains(e.Error, "hunter2-secret") {
			t.Errorf("event %d (%s): secret in error %q", i, e.Event, e.Error)
		}
		if e.Path != "1/f" || e.Step != 1 || e.Index != nil {
			t.Errorf("event %d (%s): path %q step %d index %v", i, e.Event, e.Path, e.Step, e.Index)
		}
	}
	t.Logf("attempt_end 1: kind %q error %q", got[3].Kind, got[3].Error)
}

// TestAttemptEventsNotForStubs: a stubbed invocation makes no attempt,
// so it sends neither attempt event (but still node_start and node_end).
func TestAttemptEventsNotForStubs(t *testing.T) {
	rec := &eventLog{}
	_, err := runYAML(t, `
lgx: 1
name: t
state: {}
nodes:
  f: {type: probe, with: {value: 1}}
edges:
  - {from: START, to: f}
`, nil, func(o *Options) {
		o.Sink = rec
		o.Stubs = func(path, node string, index int) (any, bool) { return "stub", true }
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.named(EventAttemptStart)) + len(rec.named(EventAttemptEnd)); n != 0 {
		t.Errorf("%d attempt events for a stubbed invocation, want 0", n)
	}
	if len(rec.named(EventNodeEnd)) != 1 {
		t.Errorf("node_end events: %d, want 1", len(rec.named(EventNodeEnd)))
	}
}
