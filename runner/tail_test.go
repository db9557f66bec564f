package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// Tail turns the journal into the events a local run sends: steps start
// with their first record and end with the next step's, each record is
// a node_start and its end (or an interrupt) once, tool calls, children
// and answers are not invocations of the graph, a paused interrupt that
// was answered is reported again, and Skip hides what was there before.
// A record's attempts are retry events, its model usage node_end's GenAI.
func TestTail(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	if err := st.CreateRun(ctx, &store.Run{ID: "R", Workflow: "w", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(path, node string, index, step int, status, errMsg string, ms int) {
		t.Helper()
		s := at.Add(time.Duration(len(path)) * time.Millisecond)
		if err := st.RecordInvocation(ctx, &store.Invocation{RunID: "R", Path: path, Step: step, Node: node, Index: index, Status: status,
			Error: errMsg, Attempts: 1, StartedAt: s, EndedAt: s.Add(time.Duration(ms) * time.Millisecond), Writes: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	tail := NewTail(st, "R", "w", SinkFunc(func(e Event) {
		line := e.Event
		if e.Path != "" {
			line += " " + e.Path
		}
		if e.Step > 0 && e.Path == "" {
			line += fmt.Sprintf(" %d", e.Step)
		}
		if e.Message != "" {
			line += " " + e.Message
		}
		if e.Writes != nil {
			w, _ := json.Marshal(e.Writes)
			line += " writes " + string(w)
		}
		if e.Event == EventRetry {
			line += fmt.Sprintf(" attempt %d", e.Attempt)
		}
		for _, g := range e.GenAI {
			line += fmt.Sprintf(" tokens %d/%d", g.InputTokens, g.OutputTokens)
		}
		if e.State != nil {
			s, _ := json.Marshal(e.State)
			line += " state " + string(s)
		}
		if e.Run != "R" {
			line += " (run " + e.Run + ")"
		}
		got = append(got, line)
	}))
	poll := func(want ...string) {
		t.Helper()
		got = nil
		if err := tail.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	rec("1/old", "old", -1, 1, store.InvocationOK, "", 1)
	if err := tail.Skip(ctx); err != nil {
		t.Fatal(err)
	}
	poll("run_start")
	rec("2/a[0]", "a", 0, 2, store.InvocationOK, "", 5)
	if err := st.RecordInvocation(ctx, &store.Invocation{RunID: "R", Path: "2/w", Step: 2, Node: "w", Index: -1, Status: store.InvocationOK,
		Attempts: 3, StartedAt: at, EndedAt: at, Writes: []byte(`{"k":[1,"two"],"lgx:llm":{"input_tokens":3,"output_tokens":4}}`)}); err != nil {
		t.Fatal(err)
	}
	rec("2/a[1]", "a", 1, 2, store.InvocationFailed, "boom", 5)
	rec("2/tools/tool:c1", "t", -1, 2, store.InvocationOK, "", 1)
	rec("2/sub/1/x", "x", -1, 2, store.InvocationOK, "", 1)
	poll("step_start 2", "node_start 2/w", "retry 2/w attempt 1", "retry 2/w attempt 2", "node_end 2/w writes {\"k\":[1,\"two\"]} tokens 3/4", "node_start 2/a[0]", "node_end 2/a[0]", "node_start 2/a[1]", "node_error 2/a[1]")
	poll()
	rec("3/ask", "ask", -1, 3, store.InvocationInterrupted, "ok?", 0)
	poll("step_end 2", "step_start 3", "node_start 3/ask", "interrupt 3/ask ok?")
	rec("3/ask@01ANSWER", "ask", -1, 3, store.InvocationAnswered, "", 0)
	rec("3/ask", "ask", -1, 3, store.InvocationOK, "", 0)
	poll("node_start 3/ask", "node_end 3/ask")
	got = nil
	tail.End(store.StatusCompleted, "", map[string]any{"out": 1}, at)
	if strings.Join(got, ",") != `step_end 3,run_end 3 state {"out":1}` {
		t.Errorf("end: %v", got)
	}
}
