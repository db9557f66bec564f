package runner

import (
	"context"
	"reflect"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestInterruptInSubgraphToolPausesRun: a tool whose node is a subgraph
// whose child waits at an interrupt pauses the whole run (SPEC §9.2), as
// a subgraph node does, once the tools node's other calls ended; they are
// recorded, so the resume answering the child's interrupt sends none of
// them again, and the child goes on from its interrupt. Before, the
// pause was the call's error message, and the model read "error:
// interrupted: …" while the approval was skipped.
func TestInterruptInSubgraphToolPausesRun(t *testing.T) {
	pay := newPayments(t)
	dir := t.TempDir()
	writeWorkflows(t, dir, pay.srv.URL, map[string]string{
		"parent.yaml": `
lgx: 1
name: toolpause
state:
  out: {type: list, reducer: append, default: []}
tools:
  refund:
    description: Refund an order
    parameters: {type: object, properties: {order: {type: string}}, required: [order]}
    node: {type: http_fetch, with: {url: "URL/charge", method: POST, json: {refund: "${{ args.order }}"}}}
    output: ${{ result.json.refund }}
  approved_refund:
    description: Refund an order once a person approves
    parameters: {type: object, properties: {order: {type: string}}, required: [order]}
    node: {type: subgraph, with: {workflow: child.yaml, input: {order: "${{ args.order }}"}}}
    output: ${{ result.done }}
nodes:
  act:
    type: tools
    with:
      calls:
        - {id: c1, name: refund, arguments: {order: A}}
        - {id: c2, name: approved_refund, arguments: {order: B}}
    output: {out: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
`,
		"child.yaml": `
lgx: 1
name: approval
state:
  order: {type: string, required: true}
  ok: {type: boolean, default: false}
  done: any
nodes:
  review: {type: interrupt, with: {message: "refund ${{ state.order }}?"}, output: {ok: "${{ result.approved }}"}}
  pay: {type: http_fetch, with: {url: "URL/charge", method: POST, json: {refund: "${{ state.order }}"}}, output: {done: "${{ result.json.refund }}"}}
edges:
  - {from: START, to: review}
  - from: review
    when: [{if: state.ok, to: pay}]
    else: END
`})
	t.Chdir(dir)
	g, err := LoadGraph("parent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := store.NewMemory()
	res, err := Run(ctx, g, Options{Store: st, RunID: "R", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusInterrupted {
		t.Fatalf("status %s: the child's interrupt did not pause the run (state %v)", res.Status, res.State)
	}
	want := []Interrupt{{Path: "1/act/tool:c2/1/review", Node: "review", Index: -1, Message: "refund B?"}}
	if !reflect.DeepEqual(res.Interrupts, want) {
		t.Fatalf("interrupts %+v, want %+v", res.Interrupts, want)
	}
	pay.check(t, []string{"lgx-R-1/act/tool:c1"}, true)

	res, err = Resume(ctx, st, "R", Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"approved": true}}})
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("resume: %v, status %v", err, res.Status)
	}
	var contents []any
	for _, m := range res.State["out"].([]any) {
		contents = append(contents, m.(map[string]any)["content"])
	}
	if !reflect.DeepEqual(contents, []any{"A", "B"}) {
		t.Errorf("tool messages %v, want A (sent before the pause) and B (after the approval)", contents)
	}
	// The first call is not sent again; the child's payment once.
	pay.check(t, []string{"lgx-R-1/act/tool:c1", "lgx-R-1/act/tool:c2/2/pay"}, true)
}
