package runner

import (
	"strings"
	"testing"
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
