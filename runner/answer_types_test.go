package runner

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

const reviewWorkflow = `
lgx: 1
name: review
state:
  decision: {type: object, default: {}}
nodes:
  review:
    type: interrupt
    with: {message: "Approve?", answer: {approved: boolean, comment: string}}
    output: {decision: "${{ result }}"}
edges:
  - {from: START, to: review}
`

// TestAnswerTypes: an interrupt that declares its answer's types
// (with.answer) has its answer checked before the run goes on: a name it
// does not list and a value that does not fit are refused and the run
// stays paused, locally, for an interrupt inside a subgraph, and for an
// answer recorded for an engine.
func TestAnswerTypes(t *testing.T) {
	ctx := context.Background()
	env := []string{}
	refused := func(t *testing.T, st store.Store, runID string, a Answer, want string) {
		t.Helper()
		_, err := Resume(ctx, st, runID, Options{Environ: env, Answer: a})
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(ie.Msg, want) {
			t.Fatalf("resume with %v: %v; want an input error with %q", a.Values, err, want)
		}
		if rec, err := st.GetRun(ctx, runID); err != nil || rec.Status != store.StatusInterrupted {
			t.Fatalf("after a refused answer the run is %v (%v), want still interrupted", rec.Status, err)
		}
	}

	t.Run("local", func(t *testing.T) {
		g := compileYAML(t, reviewWorkflow)
		st := store.NewMemory()
		if res, err := Run(ctx, g, Options{Store: st, RunID: "R", Environ: env}); err != nil || res.Status != store.StatusInterrupted {
			t.Fatalf("run: %v %v", res, err)
		}
		want := map[string]string{"approved": "boolean", "comment": "string"}
		if got := AnswerTypes(ctx, st, "R", Answer{}, nil); !maps.Equal(got, want) {
			t.Errorf("AnswerTypes = %v, want %v", got, want)
		}
		refused(t, st, "R", Answer{Values: map[string]any{"approved": "yes"}},
			`1/review: answer "approved": expected boolean, got string "yes" (the run stays paused)`)
		refused(t, st, "R", Answer{Values: map[string]any{"aproved": true}},
			`1/review takes no answer "aproved" (the run stays paused); it takes approved, comment (did you mean approved?)`)
		res, err := Resume(ctx, st, "R", Options{Environ: env, Answer: Answer{Values: map[string]any{"approved": true, "comment": "ok"}}})
		if err != nil || res.Status != store.StatusCompleted {
			t.Fatalf("resume: %v %v", res, err)
		}
		if got := res.State["decision"]; !reflect.DeepEqual(got, map[string]any{"approved": true, "comment": "ok"}) {
			t.Errorf("decision = %v", got)
		}
	})

	// Parallel approvals in a loop: each item's interrupt is answered on
	// its own (--node by the end of its path), and every visit of the loop
	// checks its answers again.
	t.Run("parallel approvals in a loop", func(t *testing.T) {
		g := compileYAML(t, `
lgx: 1
name: rounds
state:
  round: {type: integer, default: 0}
  oks: {type: list, reducer: append, default: []}
nodes:
  ask:
    type: interrupt
    for_each: ${{ [1, 2] }}
    with: {message: "ok ${{ item }}?", answer: {ok: boolean}}
    output: {oks: "${{ [result.ok] }}"}
  next: {type: set, output: {round: "${{ state.round + 1 }}"}}
edges:
  - {from: START, to: ask}
  - {from: ask, to: next}
  - from: next
    when: [{if: "state.round < 2", to: ask}]
    else: END
`)
		st := store.NewMemory()
		if res, err := Run(ctx, g, Options{Store: st, RunID: "P", Environ: env}); err != nil || res.Status != store.StatusInterrupted {
			t.Fatalf("run: %v %v", res, err)
		}
		for _, path := range []string{"1/ask[0]", "1/ask[1]", "3/ask[0]", "3/ask[1]"} {
			node := path[strings.IndexByte(path, '/')+1:]
			if got := AnswerTypes(ctx, st, "P", Answer{Node: node}, nil); !maps.Equal(got, map[string]string{"ok": "boolean"}) {
				t.Errorf("%s: AnswerTypes = %v", path, got)
			}
			refused(t, st, "P", Answer{Node: node, Values: map[string]any{"ok": "sure"}}, path+`: answer "ok": expected boolean, got string "sure"`)
			res, err := Resume(ctx, st, "P", Options{Environ: env, Answer: Answer{Node: node, Values: map[string]any{"ok": true}}})
			if err != nil {
				t.Fatalf("resume %s: %v", path, err)
			}
			if path == "3/ask[1]" {
				if res.Status != store.StatusCompleted || !reflect.DeepEqual(res.State["oks"], []any{true, true, true, true}) {
					t.Fatalf("last resume: %s, state %v", res.Status, res.State)
				}
			} else if res.Status != store.StatusInterrupted {
				t.Fatalf("resume %s: %s, want paused at the next approval", path, res.Status)
			}
		}
	})

	t.Run("inside a subgraph", func(t *testing.T) {
		dir := t.TempDir()
		writeWorkflows(t, dir, "", map[string]string{
			"parent.yaml": `
lgx: 1
name: parent
state:
  n: {type: integer, default: 0}
nodes:
  sub: {type: subgraph, with: {workflow: child.yaml}, output: {n: "${{ result.n }}"}}
edges:
  - {from: START, to: sub}
`,
			"child.yaml": `
lgx: 1
name: child
state:
  n: {type: integer, default: 0}
nodes:
  ask: {type: interrupt, with: {message: "How many?", answer: {n: integer}}, output: {n: "${{ result.n }}"}}
edges:
  - {from: START, to: ask}
`})
		t.Chdir(dir)
		g, err := LoadGraph("parent.yaml")
		if err != nil {
			t.Fatal(err)
		}
		st := store.NewMemory()
		if res, err := Run(ctx, g, Options{Store: st, RunID: "S", Environ: env}); err != nil || res.Status != store.StatusInterrupted {
			t.Fatalf("run: %v %v", res, err)
		}
		if got := AnswerTypes(ctx, st, "S", Answer{}, nil); !maps.Equal(got, map[string]string{"n": "integer"}) {
			t.Errorf("AnswerTypes = %v, want n: integer", got)
		}
		refused(t, st, "S", Answer{Values: map[string]any{"n": 2.5}}, `1/sub/1/ask: answer "n": expected integer, got number`)
		res, err := Resume(ctx, st, "S", Options{Environ: env, Answer: Answer{Values: map[string]any{"n": 3}}})
		if err != nil || res.State["n"] != 3 {
			t.Fatalf("resume: %v, state %v", err, res.State)
		}
	})

	t.Run("recorded for an engine", func(t *testing.T) {
		g := compileYAML(t, reviewWorkflow)
		st, open := submitted(t, g)
		s := open()
		p, err := s.Plan(ctx)
		if err != nil || p.Done {
			t.Fatalf("plan: %+v %v", p, err)
		}
		if _, err := open().Invoke(ctx, Invocation{Node: "review", Index: -1}); err != nil {
			t.Fatal(err)
		}
		if res, err := open().CommitStep(ctx, p.Step); err != nil || res.Status != store.StatusInterrupted {
			t.Fatalf("commit: %+v %v", res, err)
		}
		_, err = RecordAnswer(ctx, st, "R", Answer{Values: map[string]any{"approved": "yes"}}, nil, nil)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(ie.Msg, `answer "approved": expected boolean`) {
			t.Fatalf("RecordAnswer of a string for a boolean: %v", err)
		}
		if _, err := RecordAnswer(ctx, st, "R", Answer{Values: map[string]any{"approved": false}}, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
}
