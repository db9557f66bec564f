package runner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestAnswersNode: --node names a waiting interrupt by its path, by the end
// of its path at a "/", or by node name, and only when one interrupt fits.
// A name that fits several is refused listing those it fits; one that fits
// none, listing every waiting interrupt.
func TestAnswersNode(t *testing.T) {
	waiting := []Interrupt{
		{Path: "1/ask[0]", Node: "ask", Index: 0},
		{Path: "1/ask[1]", Node: "ask", Index: 1},
		{Path: "1/legal", Node: "legal", Index: -1},
		{Path: "1/kids[0]/2/ask[0]", Node: "ask", Index: 0},
		{Path: "1/kids[1]/2/sign", Node: "sign", Index: -1},
	}
	for _, tc := range []struct {
		node, want, err string
		lists           []string // the paths the error lists; nil: every waiting one
	}{
		{node: "1/ask[0]", want: "1/ask[0]"},
		{node: "1/kids[0]/2/ask[0]", want: "1/kids[0]/2/ask[0]"},
		{node: "ask[1]", want: "1/ask[1]"},
		{node: "legal", want: "1/legal"},
		{node: "sign", want: "1/kids[1]/2/sign"},
		{node: "2/sign", want: "1/kids[1]/2/sign"},
		{node: "kids[1]/2/sign", want: "1/kids[1]/2/sign"},
		{node: "2/ask[0]", want: "1/kids[0]/2/ask[0]"},
		// Fits two: 1/ask[0] and 1/kids[0]/2/ask[0].
		{node: "ask[0]", err: `waits at 2 interrupts that "ask[0]" names`,
			lists: []string{"1/ask[0]", "1/kids[0]/2/ask[0]"}},
		{node: "ask", err: `waits at 3 interrupts that "ask" names`,
			lists: []string{"1/ask[0]", "1/ask[1]", "1/kids[0]/2/ask[0]"}},
		// Ends only at a "/": "sk[1]" and "[1]" name nothing.
		{node: "sk[1]", err: `does not wait at "sk[1]"`},
		{node: "[1]", err: `does not wait at "[1]"`},
		{node: "ask[2]", err: `does not wait at "ask[2]"`},
		{node: "2/legal", err: `does not wait at "2/legal"`},
	} {
		t.Run(tc.node, func(t *testing.T) {
			got, err := answers("R", waiting, Answer{Node: tc.node, Values: map[string]any{"ok": true}}, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("answers(--node %s) = %v, %v; want an error with %q", tc.node, got, err, tc.err)
				}
				want := tc.lists
				if want == nil {
					for _, w := range waiting {
						want = append(want, w.Path)
					}
				}
				var listed []string
				for _, line := range strings.Split(err.Error(), "\n") {
					if path, ok := strings.CutPrefix(line, "  "); ok {
						listed = append(listed, strings.TrimSuffix(path, ": "))
					}
				}
				if strings.Join(listed, " ") != strings.Join(want, " ") {
					t.Errorf("the error lists %v, want %v:\n%v", listed, want, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("answers(--node %s): %v", tc.node, err)
			}
			if len(got) != 1 || got[tc.want] == nil {
				t.Fatalf("answers(--node %s) = %v, want the answer for %s", tc.node, got, tc.want)
			}
		})
	}
}

// TestBudgetTargetNode: --node names a budget interrupt as it names an
// interrupt node (path, end of path, node name), so an answer meant as a
// budget's new limit is never taken by answers() as a node's result.
func TestBudgetTargetNode(t *testing.T) {
	waiting := []Interrupt{
		{Path: "1/summarize[2]", Node: "summarize", Index: 2, Budget: "run"},
		{Path: "1/ask", Node: "ask", Index: -1},
	}
	for _, node := range []string{"1/summarize[2]", "summarize[2]", "summarize"} {
		target, handled, err := (&limits{}).budgetTarget("R", waiting, Answer{Node: node, Values: map[string]any{"tokens": 400}})
		if err != nil || !handled || target == nil || target.Path != "1/summarize[2]" {
			t.Errorf("--node %s: target %v, handled %v, err %v; want the budget interrupt 1/summarize[2]", node, target, handled, err)
		}
	}
	if _, handled, err := (&limits{}).budgetTarget("R", waiting, Answer{Node: "ask", Values: map[string]any{"ok": true}}); handled || err != nil {
		t.Errorf("--node ask: handled %v, err %v; want it left to answers()", handled, err)
	}
}

// TestResumeAnswersNothing: a run that waits at no interrupt (failed,
// cancelled, or killed before its first checkpoint) refuses every answer
// alike — -i values, --node and --empty — and resumes nothing.
func TestResumeAnswersNothing(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: fails
state: {x: {type: integer, default: 0}}
nodes:
  a: {type: set, output: {x: 1}}
  b: {type: template, with: {template: "{{ .state.nope }}"}, output: {x: 2}}
edges:
  - {from: START, to: a}
  - {from: a, to: b}
`)
	failed := func(t *testing.T) store.Store {
		st := store.NewMemory()
		if res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R"}); err == nil || res.Status != store.StatusFailed {
			t.Fatalf("run: %v, want a failure", err)
		}
		return st
	}
	cancelled := func(t *testing.T) store.Store {
		st := store.NewMemory()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if res, _ := Run(ctx, g, Options{Store: st, Environ: []string{}, RunID: "R"}); res == nil || res.Status != store.StatusCancelled {
			t.Fatalf("run: %+v, want it cancelled", res)
		}
		return st
	}
	// What a kill -9 before the first checkpoint leaves: the run's record.
	died := func(t *testing.T) store.Store {
		rec, err := failed(t).GetRun(context.Background(), "R")
		if err != nil {
			t.Fatal(err)
		}
		st := store.NewMemory()
		if err := st.CreateRun(context.Background(), &store.Run{ID: rec.ID, Workflow: rec.Workflow, File: rec.File,
			Source: rec.Source, Inputs: rec.Inputs, Status: store.StatusRunning, StartedAt: rec.StartedAt}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, run := range []struct {
		name string
		st   func(*testing.T) store.Store
	}{{"failed", failed}, {"cancelled", cancelled}, {"died before its first checkpoint", died}} {
		for _, tc := range []struct {
			name, err string
			a         Answer
		}{
			{"-i", "the -i values would answer nothing", Answer{Values: map[string]any{"ok": true}}},
			{"--node", "--node b answers nothing", Answer{Node: "b"}},
			{"--empty", "--empty would answer nothing", Answer{Empty: true}},
		} {
			t.Run(run.name+"/"+tc.name, func(t *testing.T) {
				st := run.st(t)
				before, err := st.Invocations(context.Background(), "R")
				if err != nil {
					t.Fatal(err)
				}
				_, err = Resume(context.Background(), st, "R", Options{Environ: []string{}, Answer: tc.a})
				var ie *InputError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), "waits at no interrupt; "+tc.err) {
					t.Fatalf("resume %s: %v; want an input error with %q", tc.name, err, tc.err)
				}
				after, err := st.Invocations(context.Background(), "R")
				if err != nil {
					t.Fatal(err)
				}
				if len(after) != len(before) {
					t.Errorf("resume %s ran something: %d invocations, %d before", tc.name, len(after), len(before))
				}
			})
		}
	}
}
