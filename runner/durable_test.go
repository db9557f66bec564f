package runner

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/lgx-run/lgx/store"
)

// Randomised node delays never change the final state.
func TestDeterminismUnderRandomDelays(t *testing.T) {
	resetGroup("det")
	g := compileYAML(t, `
lgx: 1
name: det
state:
  log: {type: list, reducer: append, default: []}
  seen: {type: list, reducer: union, default: []}
  meta: {type: object, reducer: merge, default: {}}
  total: {type: integer, reducer: sum, default: 0}
  last: {type: string}
nodes:
  a: {type: probe, with: {rand_ms: 2, group: det}, output: {log: a, meta: {k: a}, total: 1}}
  b: {type: probe, with: {rand_ms: 2, group: det}, output: {log: b, meta: {k: b}, total: 2}}
  items:
    type: probe
    for_each: "${{ 1..6 }}"
    with: {rand_ms: 2, group: det, value: "${{ item * 10 }}"}
    output: {log: "${{ result }}", seen: "${{ item % 3 }}", total: "${{ result }}"}
  j: {type: probe, with: {rand_ms: 2, group: det}, output: {last: "${{ join(map(state.log, string(#)), ',') }}"}}
edges:
  - {from: START, to: [b, items, a]}
  - {from: [a, b, items], to: j}
`)
	var first map[string]any
	for i := range 200 {
		res, err := Run(context.Background(), g, Options{Environ: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res.State
			want := []any{"a", "b", 10, 20, 30, 40, 50, 60}
			if !reflect.DeepEqual(first["log"], want) {
				t.Fatalf("log = %v, want %v", first["log"], want)
			}
			continue
		}
		if !reflect.DeepEqual(res.State, first) {
			t.Fatalf("run %d: state %v differs from %v", i, res.State, first)
		}
	}
	if first["last"] != "a,b,10,20,30,40,50,60" || first["total"] != 213 {
		t.Errorf("final state %v", first)
	}
}

func TestEvents(t *testing.T) {
	rec := &eventLog{}
	res, err := runYAML(t, `
lgx: 1
name: ev
state:
  out: {type: list, reducer: append, default: []}
nodes:
  f: {type: set, for_each: [x, y], output: {out: "${{ item }}"}}
  g: {type: set}
edges:
  - {from: START, to: f}
  - {from: f, to: g}
`, nil, func(o *Options) { o.Sink = rec; o.StepState = true; o.RunID = "R1" })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range rec.events {
		if e.Run != "R1" || e.TS.IsZero() {
			t.Errorf("event %+v lacks run or ts", e)
		}
		names = append(names, e.Event)
	}
	want := "run_start checkpoint step_start node_start acquired attempt_start attempt_end node_start acquired attempt_start attempt_end node_end node_end step_end checkpoint step_start node_start acquired attempt_start attempt_end node_end step_end checkpoint run_end"
	// node events of one step may interleave; compare as sorted per step.
	if got := strings.Join(names, " "); got != want {
		t.Logf("events: %s", got)
		if len(names) != len(strings.Fields(want)) {
			t.Fatalf("got %d events, want %d", len(names), len(strings.Fields(want)))
		}
	}
	ends := rec.named(EventNodeEnd)
	idx := map[int]bool{}
	for _, e := range ends[:2] {
		if e.Index == nil || e.Step != 1 || e.Node != "f" {
			t.Fatalf("node_end %+v: want node f step 1 with index", e)
		}
		idx[*e.Index] = true
		b, _ := json.Marshal(e)
		if !strings.Contains(string(b), `"index":`) {
			t.Errorf("index missing from JSON %s", b)
		}
	}
	if !idx[0] || !idx[1] {
		t.Errorf("indexes %v", idx)
	}
	if ends[2].Index != nil || ends[2].Node != "g" {
		t.Errorf("g node_end %+v", ends[2])
	}
	se := rec.named(EventStepEnd)
	if !reflect.DeepEqual(se[0].State["out"], []any{"x", "y"}) || !reflect.DeepEqual(ends[0].Writes["out"], ends[0].Index) && ends[0].Writes["out"] == nil {
		t.Errorf("step_end %+v", se[0])
	}
	last := rec.events[len(rec.events)-1]
	if last.Event != EventRunEnd || last.Status != "completed" {
		t.Errorf("last event %+v", last)
	}
	b, _ := json.Marshal(rec.events[0])
	if !strings.Contains(string(b), `"event":"run_start"`) || !strings.Contains(string(b), `"workflow":"ev"`) {
		t.Errorf("run_start JSON %s", b)
	}
	_ = res
}

const approval = `
lgx: 1
name: approval
secrets: [TOKEN]
state:
  draft: {type: string}
  approved: {type: boolean, default: false}
  note: {type: string}
  log: {type: list, reducer: append, default: []}
nodes:
  write: {type: set, output: {draft: "draft with ${{ secrets.TOKEN }}", log: write}}
  side: {type: probe, with: {group: res1, value: side}, output: {log: "${{ result }}"}}
  ask: {type: interrupt, with: {message: "approve ${{ state.draft }}?"}, output: {approved: "${{ result.ok }}", note: "${{ result.note }}"}}
  publish: {type: set, output: {log: "published ${{ state.note }}"}}
edges:
  - {from: START, to: write}
  - {from: write, to: [ask, side]}
  - from: ask
    when:
      - {if: state.approved, to: publish}
`

func TestInterruptResumeAndRedaction(t *testing.T) {
	grp := resetGroup("res1")
	st := store.NewMemory()
	env := []string{"TOKEN=s3cr3t"}
	rec := &eventLog{}
	g := compileYAML(t, approval)
	res, err := Run(context.Background(), g, Options{Store: st, Environ: env, Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusInterrupted {
		t.Fatalf("status %s", res.Status)
	}
	if res.InterruptNode != "ask" || res.InterruptMessage != "approve draft with ***?" {
		t.Errorf("interrupt %q %q", res.InterruptNode, res.InterruptMessage)
	}
	if grp.calls != 1 {
		t.Fatalf("side ran %d times", grp.calls)
	}
	// Nothing stored or streamed holds the secret.
	var all []byte
	cps, _ := st.Checkpoints(context.Background(), res.RunID)
	for _, cp := range cps {
		b, _ := json.Marshal(cp)
		all = append(all, b...)
	}
	invs, _ := st.Invocations(context.Background(), res.RunID)
	for _, inv := range invs {
		b, _ := json.Marshal(inv)
		all = append(all, b...)
	}
	for _, e := range rec.events {
		b, _ := json.Marshal(e)
		all = append(all, b...)
	}
	if strings.Contains(string(all), "s3cr3t") {
		t.Errorf("secret leaked: %s", all)
	}
	if !strings.Contains(string(all), "draft with ***") {
		t.Errorf("redacted value not found in %s", all)
	}

	res2, err := Resume(context.Background(), st, res.RunID, Options{Environ: env, Answer: Answer{Values: map[string]any{"ok": true, "note": "lgtm"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Status != store.StatusCompleted {
		t.Fatalf("resumed status %s", res2.Status)
	}
	if grp.calls != 1 {
		t.Errorf("side re-ran on resume: %d calls", grp.calls)
	}
	want := []any{"write", "side", "published lgtm"}
	if !reflect.DeepEqual(res2.State["log"], want) || res2.State["approved"] != true {
		t.Errorf("state %v", res2.State)
	}
	rr, _ := st.GetRun(context.Background(), res.RunID)
	if rr.Status != store.StatusCompleted {
		t.Errorf("stored status %s", rr.Status)
	}
	if _, err := Resume(context.Background(), st, res.RunID, Options{}); err == nil {
		t.Error("resuming a completed run succeeded")
	}
}

// A failed run resumes from its last checkpoint without re-running the
// invocations of the failed step whose writes were recorded.
func TestResumeAfterFailureReusesRecordedInvocations(t *testing.T) {
	okg := resetGroup("rf_ok")
	// SQLite: it keeps every step's checkpoint (the memory store merges
	// them), which the end of the test inspects.
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src := `
lgx: 1
name: rf
state:
  n: {type: integer, default: 0}
  out: {type: list, reducer: append, default: []}
nodes:
  first: {type: set, output: {n: 1}}
  items:
    type: probe
    for_each: [1, 2, 3]
    with: {group: "${{ item == 2 ? 'rf_bad' : 'rf_ok' }}", fail: "${{ item == 2 ? 'status' : '' }}", fail_times: 1, status: 400, value: "${{ item }}", sleep_ms: "${{ item == 2 ? 50 : 0 }}"}
    output: {out: "${{ result }}"}
  last: {type: set, output: {n: "${{ state.n + len(state.out) }}"}}
edges:
  - {from: START, to: first}
  - {from: first, to: items}
  - {from: items, to: last}
`
	resetGroup("rf_bad")
	g := compileYAML(t, src)
	rid := ulid.Make().String()
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: rid})
	if err == nil || res.Status != store.StatusFailed {
		t.Fatalf("want failure, got %v %v", res.Status, err)
	}
	if okg.calls != 2 {
		t.Fatalf("ok items ran %d times", okg.calls)
	}
	var ie *InputError
	if _, err := Resume(context.Background(), st, rid, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": true}}}); !errors.As(err, &ie) {
		t.Fatalf("-i values for a run that waits at no interrupt: %v", err)
	}
	res2, err := Resume(context.Background(), st, rid, Options{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if okg.calls != 2 {
		t.Errorf("recorded items re-ran: %d calls", okg.calls)
	}
	if !reflect.DeepEqual(res2.State["out"], []any{1, 2, 3}) || res2.State["n"] != 4 {
		t.Errorf("state %v", res2.State)
	}
	cps, _ := st.Checkpoints(context.Background(), rid)
	if len(cps) != 4 { // step 0 (initial), 1, 2, 3
		t.Errorf("%d checkpoints", len(cps))
	}
	// Checkpoints hold only the keys changed in their step.
	if _, ok := cps[1].Changed["out"]; ok || len(cps[1].Changed) != 1 {
		t.Errorf("checkpoint 1 changed %v", cps[1].Changed)
	}
}

func TestIdempotencyKeyStableAcrossRetries(t *testing.T) {
	key := func(step, index int) string {
		return (&call{r: &run{id: "RUN"}, n: &node{name: "post"}, step: step, index: index}).IdempotencyKey()
	}
	if got := key(3, 2); got != "lgx-RUN-3/post[2]" || got != key(3, 2) {
		t.Errorf("key %q, want lgx-RUN-3/post[2] every time", got)
	}
	if key(3, 2) == key(3, 1) || key(3, 2) == key(4, 2) {
		t.Error("idempotency key not derived from step, node and index")
	}
}

func TestNodeErrorRedacted(t *testing.T) {
	_, err := runYAML(t, `
lgx: 1
name: t
secrets: [KEY]
state: {}
nodes:
  f: {type: probe, with: {fail: status, msg: "${{ ': key ' + secrets.KEY }}"}, retry: {attempts: 1}}
edges:
  - {from: START, to: f}
`, nil, func(o *Options) { o.Environ = []string{"KEY=hunter2"} })
	var ne *NodeError
	if !errors.As(err, &ne) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "key ***") {
		t.Fatalf("err = %v", err)
	}
	if ne.Kind != "status" {
		t.Errorf("kind %q", ne.Kind)
	}
}

// TestInvocationWritesJSON: the writes recorded for an invocation are one
// JSON object of every written key, scalars and structures alike.
func TestInvocationWritesJSON(t *testing.T) {
	st := store.NewMemory()
	g := compileYAML(t, `
lgx: 1
name: t
state:
  i: {type: integer}
  b: {type: boolean}
  n: {type: any}
  s: {type: string}
  f: {type: number}
  l: {type: list}
  m: {type: object}
nodes:
  w:
    type: set
    output:
      i: -42
      b: true
      n: null
      s: "a \"quoted\" <tag>"
      f: 2.5
      l: [1, "x"]
      m: {k: v}
edges:
  - {from: START, to: w}
`)
	res, err := Run(context.Background(), g, Options{Environ: []string{}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	invs, err := st.Invocations(context.Background(), res.RunID)
	if err != nil || len(invs) != 1 {
		t.Fatalf("invocations: %v %v", invs, err)
	}
	var got map[string]any
	if err := json.Unmarshal(invs[0].Writes, &got); err != nil {
		t.Fatalf("writes %s: %v", invs[0].Writes, err)
	}
	want := map[string]any{"i": -42.0, "b": true, "n": nil, "s": `a "quoted" <tag>`, "f": 2.5,
		"l": []any{1.0, "x"}, "m": map[string]any{"k": "v"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("writes = %s, want %v", invs[0].Writes, want)
	}
}
