package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// A tool call that runs is reported as tool_start and tool_end (tool name,
// call id, path, duration, and the error kind when it fails); a call
// reused from the record on resume is not reported again.
func TestToolCallEvents(t *testing.T) {
	// refund's POST is echoed; the first hold waits until its client goes
	// away, after saying it is held; later holds answer.
	holding := make(chan struct{})
	var holds atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/hold" {
			if holds.Add(1) == 1 {
				close(holding)
				<-r.Context().Done()
				return
			}
			fmt.Fprint(w, `{"held": true}`)
			return
		}
		_, _ = io.Copy(w, r.Body)
	}))
	defer srv.Close()
	g := compileYAML(t, strings.ReplaceAll(refundsWorkflow, "URL", srv.URL))
	calls := []any{[]any{toolCall("c1", "refund", "A"), toolCall("c2", "hold", "")}}
	st := store.NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel once the refund has finished (its tool_end follows its
	// record) while hold waits for an answer.
	refunded := make(chan struct{})
	go func() {
		<-refunded
		<-holding
		cancel()
	}()
	rec := &eventLog{}
	sink := SinkFunc(func(e Event) {
		rec.Emit(e)
		if e.Event == EventToolEnd && e.ToolCallID == "c1" {
			close(refunded)
		}
	})
	_, err := Run(ctx, g, Options{Store: st, Environ: []string{}, RunID: "T1", Sink: sink, Inputs: map[string]any{"calls": calls}})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("run: %v, want cancelled", err)
	}
	byCall := func(evs []Event) map[string]Event {
		m := map[string]Event{}
		for _, e := range evs {
			m[e.ToolCallID] = e
		}
		return m
	}
	starts, ends := byCall(rec.named(EventToolStart)), byCall(rec.named(EventToolEnd))
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("first run: tool_start %v, tool_end %v; want c1 and c2 each", starts, ends)
	}
	for id, tool := range map[string]string{"c1": "refund", "c2": "hold"} {
		s, e := starts[id], ends[id]
		if s.Tool != tool || s.Node != "run_tools" || s.Path != "1/run_tools/tool:"+id || s.Step != 1 {
			t.Errorf("tool_start of %s: %+v", id, s)
		}
		if e.Tool != tool || e.Path != s.Path || e.TS.Before(s.TS) {
			t.Errorf("tool_end of %s: %+v", id, e)
		}
	}
	if e := ends["c1"]; e.Kind != "" || e.Error != "" {
		t.Errorf("refund's tool_end reports a failure: %+v", e)
	}
	if e := ends["c2"]; e.Kind != "cancelled" || e.Error == "" {
		t.Errorf("hold's tool_end: kind %q error %q, want cancelled", e.Kind, e.Error)
	}

	rec = &eventLog{}
	res, err := Resume(context.Background(), st, "T1", Options{Environ: []string{}, Sink: rec})
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("resume: %v %v", res.Status, err)
	}
	starts, ends = byCall(rec.named(EventToolStart)), byCall(rec.named(EventToolEnd))
	if len(starts) != 1 || len(ends) != 1 || starts["c2"].Tool != "hold" || ends["c2"].Kind != "" {
		t.Errorf("resume: tool_start %v, tool_end %v; want only hold's (refund is reused)", starts, ends)
	}
}

// A model's calls of MCP tools are reported like declared tools' calls,
// under the name the model used; an isError answer is a result the model
// reads, not a failed call.
func TestMCPToolCallEvents(t *testing.T) {
	ts := newMCPTestServer()
	g := compileYAML(t, `
lgx: 1
name: mcp-events
mcp:
  t: {command: not-started-in-tests}
state:
  msgs: any
nodes:
  run_tools:
    type: tools
    with:
      calls:
        - {id: c1, name: t.echo, arguments: {text: hi}}
        - {id: c2, name: t__fail, arguments: {}}
    output: {msgs: "${{ result.messages }}"}
edges:
  - {from: START, to: run_tools}
`)
	rec := &eventLog{}
	if _, err := Run(context.Background(), g, Options{MCPTransport: ts.transport, Sink: rec}); err != nil {
		t.Fatal(err)
	}
	starts, ends := rec.named(EventToolStart), rec.named(EventToolEnd)
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("tool_start %d, tool_end %d; want 2 each", len(starts), len(ends))
	}
	got := map[string]string{}
	for _, e := range ends {
		got[e.ToolCallID] = e.Tool + " " + e.Path + " " + e.Kind
	}
	want := map[string]string{"c1": "t.echo 1/run_tools/tool:c1 ", "c2": "t__fail 1/run_tools/tool:c2 "}
	if !maps.Equal(got, want) {
		t.Errorf("tool_end events %q, want %q", got, want)
	}
}
