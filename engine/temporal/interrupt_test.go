package temporal

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// approvalsWithFetch pauses at two interrupts in the step that also
// fetches a page: the fetch must be sent once, however often the step is
// dispatched again for answers.
const approvalsWithFetch = `
lgx: 1
name: approvals
state:
  url: {type: string, required: true}
  page: string
  legal_ok: boolean
  finance_ok: boolean
nodes:
  fetch:
    type: http_fetch
    with: {url: "${{ state.url }}", method: POST, body: "a"}
    output: {page: "${{ result.body }}"}
  legal:
    type: interrupt
    with: {message: "Legal review?"}
    output: {legal_ok: "${{ result.ok }}"}
  finance:
    type: interrupt
    with: {message: "Finance review?"}
    output: {finance_ok: "${{ result.ok }}"}
edges:
  - {from: START, to: [fetch, legal, finance]}
`

// TestTemporalAnswers answers interrupts of a run on Temporal as two
// racing resumes would: both answers are recorded in the store, the
// workflow accepts the first and refuses the second (marked refused),
// and the run goes on with the accepted one. The step that paused is
// dispatched again for each answer, but its recorded fetch is not sent
// again, and the answers' values never enter the workflow's history.
func TestTemporalAnswers(t *testing.T) {
	lw := startLive(t, "lgx-answers", 4)
	c, st, queue := lw.c, lw.st, lw.queue
	srv := &inflight{}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	g := compile(t, "approvals.yaml", approvalsWithFetch)
	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, map[string]any{"url": hs.URL + "/doc"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, c, queue, RunInput{RunID: runID}); err != nil {
		t.Fatal(err)
	}
	follow := func(want store.Status) {
		t.Helper()
		out, err := Follow(ctx, c, runID)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != want {
			t.Fatalf("run %s (%s), want %s", out.Status, out.Error, want)
		}
	}
	record := func(node string, ok bool, secret string) *runner.AnswerRecord {
		t.Helper()
		a, err := runner.RecordAnswer(ctx, st, runID, runner.Answer{Node: node, Values: map[string]any{"ok": ok, "note": secret}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	follow(store.StatusInterrupted)

	first, second := record("legal", true, "first-note-7f3a"), record("legal", false, "second-note-9c1d")
	if err := Answer(ctx, c, runID, first.Path, first.Nonce); err != nil {
		t.Fatalf("first answer: %v", err)
	}
	err := Answer(ctx, c, runID, second.Path, second.Nonce)
	var ref *RefusedError
	if !errors.As(err, &ref) {
		t.Fatalf("second answer: %v, want a *RefusedError", err)
	}
	if err := runner.RefuseAnswer(ctx, st, second); err != nil {
		t.Fatal(err)
	}
	follow(store.StatusInterrupted) // finance still waits

	// An answer to an interrupt the run does not wait at is refused by
	// the workflow too (the store said it waited when it was recorded).
	if err := Answer(ctx, c, runID, "1/nowhere", first.Nonce); !errors.As(err, &ref) {
		t.Fatalf("answer to 1/nowhere: %v, want a *RefusedError", err)
	}

	fin := record("finance", false, "finance-note-2b8e")
	if err := Answer(ctx, c, runID, fin.Path, fin.Nonce); err != nil {
		t.Fatal(err)
	}
	follow(store.StatusCompleted)

	res, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.State["legal_ok"] != true || res.State["finance_ok"] != false {
		t.Errorf("state %v: want legal_ok true (the accepted answer), finance_ok false", res.State)
	}
	if n := srv.total.Load(); n != 1 {
		t.Errorf("the fetch was sent %d times, want once", n)
	}
	invs, err := st.Invocations(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, inv := range invs {
		statuses[inv.Path] = inv.Status
	}
	for path, want := range map[string]string{
		"1/fetch": store.InvocationOK, "1/legal": store.InvocationOK, "1/finance": store.InvocationOK,
		first.Path + "@" + first.Nonce: store.InvocationAnswered, second.Path + "@" + second.Nonce: store.InvocationRefused,
	} {
		if statuses[path] != want {
			t.Errorf("%s: %q, want %q (all: %v)", path, statuses[path], want, statuses)
		}
	}
	// The history holds nonces and paths, never the values.
	hist := historyText(ctx, t, c, runID)
	for _, v := range []string{"first-note-7f3a", "second-note-9c1d", "finance-note-2b8e"} {
		if contains(hist, v) {
			t.Errorf("the workflow history holds the answer value %q", v)
		}
	}
	if !contains(hist, first.Nonce) {
		t.Errorf("the workflow history does not name the accepted answer %s", first.Nonce)
	}
}

// historyText is the run's workflow history as protobuf JSON: every
// payload, input and result it holds.
func historyText(ctx context.Context, t *testing.T, c client.Client, runID string) string {
	t.Helper()
	var b strings.Builder
	for it := c.GetWorkflowHistory(ctx, runID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		j, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// contains reports whether the history holds s, as is or base64-encoded
// (payloads are bytes, which protobuf JSON shows in base64).
func contains(hist, s string) bool {
	if strings.Contains(hist, s) {
		return true
	}
	for shift := range 3 { // s at each alignment within a base64 stream
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, shift), s...))
		core := enc[(shift*4+2)/3+1 : len(enc)-4]
		if len(core) > 4 && strings.Contains(hist, core) {
			return true
		}
	}
	return false
}
