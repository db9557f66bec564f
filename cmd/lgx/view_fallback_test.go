package main

import (
	"bytes"
	"testing"

	"github.com/lgx-run/lgx/runner"
)

// A switch to a fallback provider is a line of the plain progress, like a
// retry: without it the log showed the primary's retries, then success,
// and never which provider answered.
func TestPlainViewFallback(t *testing.T) {
	var buf bytes.Buffer
	v := newPlainView(&buf, fixedClock(at(1000)))
	v.Emit(runner.Event{Event: runner.EventFallback, TS: at(0), Node: "ask", Index: idx(2), Kind: "status",
		Error: "llm_call: provider main: HTTP 503\nService Unavailable", Message: "provider main failed after its retries; asking backup"})
	want := "15:04:05.000 fallback ask[2]: provider main failed after its retries; asking backup, after [status] llm_call: provider main: HTTP 503 Service Unavailable\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
