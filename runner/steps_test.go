package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// driveSteps runs a submitted run the way a distributed scheduler does:
// Plan, every invocation through InvokeOne on its own StepRun (last item
// first, as a remote worker pool may finish them), CommitStep on another.
// repeat calls every operation twice, as a retried activity would.
func driveSteps(t *testing.T, st store.Store, runID string, repeat bool) *StepPlan {
	t.Helper()
	ctx := context.Background()
	open := func() *StepRun {
		s, err := OpenStep(ctx, st, runID, StepOptions{Environ: []string{}})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	}
	for range 50 {
		p, err := open().Plan(ctx)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if p.Done {
			return p
		}
		inv := open()
		for i := len(p.Nodes) - 1; i >= 0; i-- {
			pn := p.Nodes[i]
			for k := pn.Invocations() - 1; k >= 0; k-- {
				idx := k
				if pn.Items < 0 {
					idx = -1
				}
				if pn.Child && driveChild(t, inv, pn.Name, idx, repeat) == 0 {
					t.Errorf("%s[%d]: its child ran inside the subgraph invocation, not step by step", pn.Name, idx)
				}
				var before map[string]*store.Invocation
				if pn.Calls {
					driveToolCalls(t, inv, pn.Name, idx, repeat)
					before = toolCallRecords(t, inv, p.Step, pn.Name, idx)
				}
				for n := range 1 + boolN(repeat) {
					invoke := inv.InvokeOne
					if n == 0 && k%2 == 0 && !pn.Child {
						invoke = inv.InvokeFirst
					}
					r, err := invoke(ctx, pn.Name, idx)
					if err != nil {
						t.Fatalf("invoke %s[%d]: %v", pn.Name, idx, err)
					}
					// A subgraph invocation is recorded by the call that
					// finds its child ended (in driveChild).
					if r.Recorded != (n == 1 || pn.Child) {
						t.Errorf("invoke %s[%d] call %d: Recorded = %v", pn.Name, idx, n+1, r.Recorded)
					}
				}
				if pn.Calls {
					// The invocation read its calls' records: it called no tool.
					after := toolCallRecords(t, inv, p.Step, pn.Name, idx)
					if len(after) != len(before) {
						t.Errorf("%s[%d]: %d tool call records before the invocation, %d after", pn.Name, idx, len(before), len(after))
					}
					for path, b := range before {
						if a := after[path]; a == nil || !a.EndedAt.Equal(b.EndedAt) {
							t.Errorf("%s: the tools invocation ran the call again", path)
						}
					}
				}
			}
		}
		var first *StepResult
		for n := range 1 + boolN(repeat) {
			res, err := open().CommitStep(ctx, p.Step)
			if err != nil {
				t.Fatalf("commit %d: %v", p.Step, err)
			}
			if n == 0 {
				first = res
			} else if fmt.Sprint(res) != fmt.Sprint(first) {
				t.Errorf("second commit of step %d = %+v, first %+v", p.Step, res, first)
			}
		}
		if first.Status != store.StatusRunning {
			p2, err := open().Plan(ctx)
			if err != nil {
				t.Fatalf("plan after end: %v", err)
			}
			return p2
		}
	}
	t.Fatal("no end after 50 steps")
	return nil
}

// driveToolCalls plans and runs the tool calls of the tools invocation
// node[idx] as a scheduler does before invoking it: each call once (twice
// with repeat: the second returns the record), last first.
func driveToolCalls(t *testing.T, s *StepRun, node string, idx int, repeat bool) {
	t.Helper()
	driveCalls(t, s, Invocation{Node: node, Index: idx, Lookup: true}, repeat)
}

// driveCalls is driveToolCalls for the tools invocation in names (with
// in.Child: of a subgraph invocation's child).
func driveCalls(t *testing.T, s *StepRun, in Invocation, repeat bool) {
	t.Helper()
	ctx := context.Background()
	node, idx := in.Node, in.Index
	if in.Child != nil {
		node, idx = in.Node+"/"+in.Child.Node, in.Child.Index
	}
	p, err := s.ToolCalls(ctx, in)
	if err != nil {
		t.Fatalf("tool calls of %s[%d]: %v", node, idx, err)
	}
	for k := len(p.Calls) - 1; k >= 0; k-- {
		if p.Calls[k].Tool == "" || p.Calls[k].Done {
			continue
		}
		for n := range 1 + boolN(repeat) {
			r, err := s.InvokeToolCall(ctx, in, k)
			if err != nil {
				t.Fatalf("tool call %d of %s[%d]: %v", k, node, idx, err)
			}
			child := r.Child != nil
			if child {
				// A subgraph tool's call: its child step by step, the call
				// asked again after each, until it has ended (recorded
				// by the call that ran its child's last invocation, or
				// by the one asked after).
				r = driveCallChild(t, s, in, r, repeat, func() (*InvokeResult, error) { return s.InvokeToolCall(ctx, in, k) })
			}
			if r.Child != nil || r.Recorded != (n == 1) && !(n == 0 && child) {
				t.Errorf("tool call %d of %s[%d], call %d: Recorded = %v, child step %v", k, node, idx, n+1, r.Recorded, r.Child)
			}
		}
	}
	if repeat {
		again, err := s.ToolCalls(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for k, c := range again.Calls {
			if c.Tool != "" && !c.Done {
				t.Errorf("tool call %d of %s[%d] is not done once run", k, node, idx)
			}
		}
	}
}

// driveCallChild dispatches the child of a subgraph tool's call of the
// tools invocation in names, whose first call returned r (the child's
// first step), as a scheduler does: each child invocation through a
// chain that names the call by its path segment (Invocation.Tool,
// ChildRef.Tool), twice with repeat, until the call returns no step.
func driveCallChild(t *testing.T, s *StepRun, in Invocation, r *InvokeResult, repeat bool, again func() (*InvokeResult, error)) *InvokeResult {
	t.Helper()
	ctx := context.Background()
	seg := r.Path[strings.LastIndexByte(r.Path, '/')+1:]
	hop := func(ref ChildRef) Invocation {
		out := in
		if in.Child == nil {
			out.Tool, out.Child = seg, &ref
		} else {
			out.Child = in.Child.WithTool(seg).Append(ref)
		}
		return out
	}
	for range 20 {
		if r.Status != InvocationCancelled || r.Recorded {
			t.Fatalf("%s returned a child step with status %s (recorded %v)", r.Path, r.Status, r.Recorded)
		}
		cp := r.Child
		for i := len(cp.Nodes) - 1; i >= 0; i-- {
			pn := cp.Nodes[i]
			for k := pn.Invocations() - 1; k >= 0; k-- {
				if pn.Done(k) {
					continue
				}
				cidx := k
				if pn.Items < 0 {
					cidx = -1
				}
				if pn.Child {
					t.Fatalf("%s: the driver does not dispatch a subgraph node inside a call's child", r.Path)
				}
				if pn.Calls {
					driveCalls(t, s, hop(ChildRef{Step: cp.Step, Node: pn.Name, Index: cidx}), repeat)
				}
				for n := range 1 + boolN(repeat) {
					cr, err := s.Invoke(ctx, hop(ChildRef{Step: cp.Step, Node: pn.Name, Index: cidx}))
					if err != nil {
						t.Fatalf("child %s[%d] of %s: %v", pn.Name, cidx, r.Path, err)
					}
					if cr.Recorded != (n == 1) {
						t.Errorf("child %s[%d] of %s, call %d: Recorded = %v", pn.Name, cidx, r.Path, n+1, cr.Recorded)
					}
				}
			}
		}
		// The call asked again: its child's next step, or its end.
		path := r.Path
		var err error
		if r, err = again(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.Child == nil {
			return r
		}
	}
	t.Fatalf("%s: no end of its child after 20 steps", r.Path)
	return nil
}

// driveChild dispatches the child of the subgraph invocation node[idx]
// step by step as a scheduler does before the invocation ends: Invoke
// returns the child's next step until none is left; each of its
// invocations runs with a Child reference (twice with repeat: the second
// returns the record), last first.
func driveChild(t *testing.T, s *StepRun, node string, idx int, repeat bool) (steps int) {
	t.Helper()
	ctx := context.Background()
	for ; steps < 20; steps++ {
		r, err := s.Invoke(ctx, Invocation{Node: node, Index: idx, Lookup: true})
		if err != nil {
			t.Fatalf("child plan of %s[%d]: %v", node, idx, err)
		}
		if r.Child == nil {
			return steps
		}
		if r.Status != InvocationCancelled {
			t.Fatalf("%s[%d] returned a child step with status %s", node, idx, r.Status)
		}
		cp := r.Child
		for i := len(cp.Nodes) - 1; i >= 0; i-- {
			pn := cp.Nodes[i]
			for k := pn.Invocations() - 1; k >= 0; k-- {
				if pn.Done(k) {
					continue
				}
				cidx := k
				if pn.Items < 0 {
					cidx = -1
				}
				if pn.Calls {
					driveCalls(t, s, Invocation{Node: node, Index: idx, Lookup: true, Child: &ChildRef{Step: cp.Step, Node: pn.Name, Index: cidx}}, repeat)
				}
				for n := range 1 + boolN(repeat) {
					ref := &ChildRef{Step: cp.Step, Node: pn.Name, Index: cidx}
					cr, err := s.Invoke(ctx, Invocation{Node: node, Index: idx, Lookup: true, Child: ref})
					if err != nil {
						t.Fatalf("child %s[%d] of %s[%d]: %v", pn.Name, cidx, node, idx, err)
					}
					if cr.Recorded != (n == 1) {
						t.Errorf("child %s[%d] of %s[%d], call %d: Recorded = %v", pn.Name, cidx, node, idx, n+1, cr.Recorded)
					}
				}
			}
		}
	}
	t.Fatalf("%s[%d]: no end of its child after 20 steps", node, idx)
	return steps
}

// toolCallRecords are the records of the tool calls of node[idx].
func toolCallRecords(t *testing.T, s *StepRun, step int, node string, idx int) map[string]*store.Invocation {
	t.Helper()
	path := invocationPath("", step, node, idx)
	recs, err := s.toolRecords(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	delete(recs, path)
	return recs
}

func boolN(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestStepsMatchRun(t *testing.T) {
	tests := []struct {
		name, src string
		children  map[string]string // files next to the workflow (subgraphs)
		inputs    map[string]any
		status    store.Status
		errHas    string
	}{
		{name: "subgraphs", src: `
lgx: 1
name: steps_sub
state:
  xs: {type: list, reducer: append, default: []}
  total: {type: integer, default: 0}
nodes:
  call:
    type: subgraph
    for_each: ${{ [1, 2, 3] }}
    with: {workflow: lib/child.yaml, input: {x: "${{ item }}"}}
    output: {xs: "${{ result.y }}"}
  once:
    type: subgraph
    with: {workflow: lib/child.yaml, input: {x: 100}}
    output: {total: "${{ result.y }}"}
edges:
  - {from: START, to: [call, once]}
  - {from: [call, once], to: END}
`, children: map[string]string{"lib/child.yaml": `
lgx: 1
name: child
state:
  x: {type: integer, required: true}
  parts: {type: list, reducer: append, default: []}
  y: {type: integer}
nodes:
  a:
    type: probe
    for_each: ${{ [1, 2] }}
    with: {value: "${{ state.x * 10 + item }}", rand_ms: 3}
    output: {parts: "${{ result }}"}
  b:
    type: probe
    with: {value: 5, rand_ms: 2}
    output: {parts: "${{ result }}"}
  sum:
    type: set
    output: {y: "${{ sum(state.parts) }}"}
edges:
  - {from: START, to: [a, b]}
  - {from: [a, b], to: sum}
  - {from: sum, to: END}
`}, status: store.StatusCompleted},
		{name: "tool calls in a subgraph", src: `
lgx: 1
name: steps_subtools
state:
  all: {type: messages, default: []}
nodes:
  agent:
    type: subgraph
    for_each: ${{ [1, 2] }}
    with: {workflow: agent.yaml, input: {x: "${{ item }}"}}
    output: {all: "${{ result.messages }}"}
edges:
  - {from: START, to: agent}
`, children: map[string]string{"agent.yaml": `
lgx: 1
name: agent
state:
  x: {type: integer, required: true}
  calls: {type: list}
  messages: {type: messages, default: []}
tools:
  double:
    description: twice a number
    parameters: {type: object, properties: {v: {type: integer}}, required: [v]}
    node:
      type: probe
      retry: {attempts: 1}
      with: {value: "${{ args.v * 2 }}", rand_ms: 3, fail: "${{ args.v == 20 ? 'http' : '' }}", status: 503, group: steps_subtools}
    output: ${{ result }}
nodes:
  model:
    type: set
    output:
      calls: |-
        ${{ [{id: "a" + string(state.x), name: "double", arguments: {v: state.x}},
             {id: "b" + string(state.x), name: "double", arguments: {v: state.x * 10}},
             {id: "c", name: "nope", arguments: {}}] }}
  act:
    type: tools
    with: {calls: "${{ state.calls }}"}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: model}
  - {from: model, to: act}
`}, status: store.StatusCompleted},
		{name: "a child fails", src: `
lgx: 1
name: steps_subfail
state:
  xs: {type: list, reducer: append, default: []}
nodes:
  call:
    type: subgraph
    for_each: ${{ [1, 2, 3] }}
    retry: {attempts: 1}
    with: {workflow: child.yaml, input: {x: "${{ item }}"}}
    output: {xs: "${{ result.y }}"}
edges:
  - {from: START, to: call}
`, children: map[string]string{"child.yaml": `
lgx: 1
name: child
state:
  x: {type: integer, required: true}
  y: {type: integer}
nodes:
  a:
    type: probe
    with: {value: "${{ state.x }}", fail: "${{ state.x == 2 ? 'http' : '' }}", status: 503, group: steps_subfail}
    output: {y: "${{ result }}"}
edges:
  - {from: START, to: a}
`}, status: store.StatusFailed, errHas: "subgraph child.yaml"},
		{name: "fan-out, join, for_each", src: `
lgx: 1
name: steps
state:
  n: {type: integer, default: 3}
  xs: {type: list, reducer: append, default: []}
  total: {type: integer, default: 0}
  msg: {type: string}
nodes:
  a:
    type: set
    output: {xs: "${{ 'a' }}"}
  b:
    type: probe
    with: {value: 2, rand_ms: 3}
    output: {total: "${{ result }}"}
  each:
    type: probe
    for_each: ${{ [1, 2, 3, 4, 5] }}
    with: {value: "${{ item * 10 }}", rand_ms: 3}
    output: {xs: "${{ result }}"}
  again:
    type: set
    output: {total: 100}
  fin:
    type: template
    with: {template: "{{ len .state.xs }} items"}
    output: msg
edges:
  - {from: START, to: [a, b]}
  - {from: [a, b], to: each}
  - from: each
    when:
      - {if: "state.total < 8", to: again}
    else: fin
  - {from: again, to: each}
  - {from: fin, to: END}
`, status: store.StatusCompleted},
		{name: "subgraph tools", src: `
lgx: 1
name: steps_subtools
state:
  calls:
    type: list
    default:
      - {id: a, name: sub, arguments: {x: 1}}
      - {id: b, name: sub, arguments: {x: 2}}
      - {id: c, name: agent, arguments: {}}
      - {id: d, name: sub, arguments: {x: 3}}
  messages: {type: messages, default: []}
tools:
  sub:
    description: a child per call
    parameters: {type: object, properties: {x: {type: integer}}, required: [x]}
    node: {type: subgraph, with: {workflow: lib/child.yaml, input: {x: "${{ args.x }}"}}}
    output: ${{ result.y }}
  agent:
    description: a child with tool calls of its own
    parameters: {type: object}
    node: {type: subgraph, with: {workflow: lib/agent.yaml}}
    output: ${{ result.messages[1].content }}
nodes:
  act:
    type: tools
    with: {calls: "${{ state.calls }}", concurrency: 2}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
  - {from: act, to: END}
`, children: map[string]string{"lib/child.yaml": `
lgx: 1
name: child
state:
  x: {type: integer, required: true}
  parts: {type: list, reducer: append, default: []}
  y: {type: integer}
nodes:
  a:
    type: probe
    for_each: ${{ [1, 2] }}
    with: {value: "${{ state.x * 10 + item }}", rand_ms: 3}
    output: {parts: "${{ result }}"}
  sum:
    type: set
    output: {y: "${{ sum(state.parts) }}"}
edges:
  - {from: START, to: a}
  - {from: a, to: sum}
  - {from: sum, to: END}
`, "lib/agent.yaml": `
lgx: 1
name: agent
state:
  calls: {type: list, default: [{id: q, name: double, arguments: {x: 4}}, {id: r, name: double, arguments: {x: 5}}]}
  messages: {type: messages, default: []}
tools:
  double:
    description: twice a number
    parameters: {type: object, properties: {x: {type: integer}}, required: [x]}
    node: {type: probe, with: {value: "${{ args.x * 2 }}", rand_ms: 3}}
    output: ${{ result }}
nodes:
  act:
    type: tools
    with: {calls: "${{ state.calls }}"}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
  - {from: act, to: END}
`}, status: store.StatusCompleted},
		{name: "failure stops the run", src: `
lgx: 1
name: steps_fail
state:
  xs: {type: list, reducer: append, default: []}
nodes:
  each:
    type: probe
    for_each: ${{ [1, 2, 3] }}
    retry: {attempts: 2, backoff: 1ms}
    with: {value: 1, fail: "${{ item == 2 ? 'http' : '' }}", status: 503, group: steps_fail}
    output: {xs: "${{ result }}"}
  after:
    type: set
    output: {xs: 9}
edges:
  - {from: START, to: each}
  - {from: each, to: after}
  - {from: after, to: END}
`, status: store.StatusFailed, errHas: "step 1: node each item 1 failed [http]: probe failure 2"},
		{name: "tool calls", src: `
lgx: 1
name: steps_tools
state:
  calls: {type: list}
  messages: {type: messages, default: []}
  n: {type: integer, default: 0}
tools:
  double:
    description: twice a number
    parameters: {type: object, properties: {x: {type: integer}}, required: [x]}
    node:
      type: probe
      with: {value: "${{ args.x * 2 }}", rand_ms: 3}
    output: ${{ result }}
  flaky:
    description: fails on 13
    parameters: {type: object, properties: {x: {type: integer}}}
    node:
      type: probe
      retry: {attempts: 2, backoff: 1ms}
      with: {value: "${{ args.x }}", fail: "${{ args.x == 13 ? 'http' : '' }}", status: 503, group: steps_tools}
    output: ${{ result }}
nodes:
  model:
    type: set
    output:
      calls: |-
        ${{ state.n == 0
          ? [{id: "c1", name: "double", arguments: {x: 2}},
             {id: "c2", name: "flaky", arguments: {x: 13}},
             {id: "c1", name: "double", arguments: "{\"x\": 5}"},
             {id: "c4", name: "nope", arguments: {}},
             {id: "c5", name: "double", arguments: {y: 1}},
             {id: "c6", name: "flaky", arguments: {x: 7}}]
          : [{id: "d1", name: "double", arguments: {x: 21}}] }}
  act:
    type: tools
    with: {calls: "${{ state.calls }}", concurrency: 2}
    output: {messages: "${{ result.messages }}"}
  count:
    type: set
    output: {n: "${{ state.n + 1 }}"}
edges:
  - {from: START, to: model}
  - {from: model, to: act}
  - {from: act, to: count}
  - from: count
    when:
      - {if: "state.n < 2", to: model}
    else: END
`, status: store.StatusCompleted},
		{name: "continue on error", src: `
lgx: 1
name: steps_continue
state:
  errs: {type: list, reducer: append, default: []}
nodes:
  x:
    type: probe
    on_error: continue
    with: {fail: http, group: steps_continue}
    output: {errs: "${{ error.kind }}"}
edges:
  - {from: START, to: x}
  - {from: x, to: END}
`, status: store.StatusCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g *Graph
			if tt.children != nil {
				dir := t.TempDir()
				files := maps.Clone(tt.children)
				files["main.yaml"] = tt.src
				writeWorkflows(t, dir, "", files)
				var err error
				if g, err = LoadGraph(filepath.Join(dir, "main.yaml")); err != nil {
					t.Fatal(err)
				}
			} else {
				g = compileYAML(t, tt.src)
			}
			ctx := context.Background()
			attemptsByKey.Clear()
			local, lerr := Run(ctx, g, Options{Store: store.NewMemory(), Inputs: tt.inputs, Environ: []string{}})
			attemptsByKey.Clear()
			for _, repeat := range []bool{false, true} {
				st := store.NewMemory()
				runID := fmt.Sprintf("R%v", repeat)
				if err := SubmitRun(ctx, g, st, runID, tt.inputs, nil); err != nil {
					t.Fatalf("submit: %v", err)
				}
				p := driveSteps(t, st, runID, repeat)
				attemptsByKey.Clear()
				if p.Status != tt.status || local.Status != tt.status {
					t.Fatalf("status: steps %s (%s), local %s (%v); want %s", p.Status, p.Error, local.Status, lerr, tt.status)
				}
				res, err := Outcome(ctx, st, runID, nil)
				if tt.errHas != "" {
					if err == nil || !strings.Contains(err.Error(), tt.errHas) || lerr == nil || err.Error() != lerr.Error() {
						t.Errorf("error: steps %v, local %v; want both equal, containing %q", err, lerr, tt.errHas)
					}
				} else if err != nil {
					t.Fatalf("outcome: %v", err)
				}
				got, _ := json.Marshal(res.State)
				want, _ := json.Marshal(local.State)
				if string(got) != string(want) {
					t.Errorf("state (repeat %v):\n steps %s\n local %s", repeat, got, want)
				}
				gotO, _ := json.Marshal(res.Output)
				wantO, _ := json.Marshal(local.Output)
				if string(gotO) != string(wantO) {
					t.Errorf("output: steps %s, local %s", gotO, wantO)
				}
			}
		})
	}
}

func TestDistributableRefuses(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"tool that makes tool calls", `
lgx: 1
name: r
state: {calls: {type: list, default: []}, messages: {type: list, default: []}}
tools:
  inner:
    description: d
    parameters: {type: object}
    node: {type: tools, with: {calls: "${{ args.calls }}"}}
nodes:
  act: {type: tools, with: {calls: "${{ state.calls }}"}, output: {messages: "${{ result.messages }}"}}
edges: [{from: START, to: act}]
`, "tool inner: type tools (tool calls)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileUnvalidated(t, tt.src) // the child file is not needed to refuse it
			err := Distributable(g)
			var ue *UnsupportedError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Distributable = %v, want an *UnsupportedError naming %q", err, tt.want)
			}
			if err := SubmitRun(context.Background(), g, store.NewMemory(), "X", nil, nil); !errors.As(err, &ue) {
				t.Errorf("SubmitRun = %v, want it refused", err)
			}
		})
	}
}

// A tool whose node is a subgraph is not refused: its calls' children
// are dispatched a step at a time (steptoolchild.go).
func TestDistributableSubgraphTool(t *testing.T) {
	g := compileUnvalidated(t, `
lgx: 1
name: r
state: {calls: {type: list, default: []}, messages: {type: list, default: []}}
tools:
  sub:
    description: d
    parameters: {type: object}
    node: {type: subgraph, with: {workflow: child.yaml}}
    output: ${{ result }}
nodes:
  act: {type: tools, with: {calls: "${{ state.calls }}"}, output: {messages: "${{ result.messages }}"}}
edges: [{from: START, to: act}]
`)
	if err := Distributable(g); err != nil {
		t.Fatalf("Distributable = %v, want nil", err)
	}
}

// A step committed with an invocation that has no record (its activity
// failed past the engine's retries) fails the run, naming it.
func TestCommitStepMissingInvocation(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: missing
state: {xs: {type: list, reducer: append, default: []}}
nodes:
  each:
    type: probe
    for_each: ${{ [1, 2] }}
    with: {value: 1}
    output: {xs: "${{ result }}"}
edges: [{from: START, to: each}, {from: each, to: END}]
`)
	ctx := context.Background()
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "M", nil, nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStep(ctx, st, "M", StepOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Plan(ctx)
	if err != nil || p.Done || p.Step != 1 {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	s2, err := OpenStep(ctx, st, "M", StepOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.InvokeOne(ctx, "each", 0); err != nil {
		t.Fatal(err)
	}
	res, err := s2.CommitStep(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "step 1: invocation 1/each[1] ended without a record (it failed on the workers: see the engine's history)"
	if res.Status != store.StatusFailed || res.Error != want {
		t.Errorf("commit: %+v; want failed: %s", res, want)
	}
}

// A step that pauses at interrupts, driven step by step: the commit
// reports the paths waited at and records the run as interrupted with the
// engine's lease kept (a resume goes through the engine); an answer
// recorded under a nonce and fed to the interrupt's invocation completes
// it with the local resume's state, while the step's other invocation,
// recorded, is not run again and the other interrupt pauses again.
func TestStepsPauseAndAnswer(t *testing.T) {
	const src = `
lgx: 1
name: approvals
state:
  seen: {type: list, reducer: append, default: []}
  legal: {type: object}
  finance: {type: object}
nodes:
  work: {type: probe, with: {value: w}, output: {seen: "${{ result }}"}}
  legal: {type: interrupt, with: {message: "legal?"}, output: {legal: "${{ result }}"}}
  finance: {type: interrupt, with: {message: "finance?"}, output: {finance: "${{ result }}"}}
edges:
  - {from: START, to: [work, legal, finance]}
`
	ctx := context.Background()
	g := compileYAML(t, src)
	st, open := submitted(t, g)
	// step runs every invocation of the planned step (looking records
	// up when lookup), with answers by path, and commits it.
	step := func(lookup, resumed bool, answers map[string]string) (*StepResult, map[string]*InvokeResult) {
		t.Helper()
		s := open()
		if resumed {
			if err := s.Continue(ctx); err != nil {
				t.Fatal(err)
			}
		}
		p, err := s.Plan(ctx)
		if err != nil || p.Done {
			t.Fatalf("plan: %+v %v", p, err)
		}
		got := map[string]*InvokeResult{}
		for _, pn := range p.Nodes {
			path := InvocationPath(p.Step, pn.Name, -1)
			r, err := open().Invoke(ctx, Invocation{Node: pn.Name, Index: -1, Lookup: lookup, Answer: answers[path]})
			if err != nil {
				t.Fatalf("invoke %s: %v", pn.Name, err)
			}
			got[pn.Name] = r
		}
		res, err := open().CommitStep(ctx, p.Step)
		if err != nil {
			t.Fatal(err)
		}
		return res, got
	}
	waitingIs := func(res *StepResult, want ...string) {
		t.Helper()
		if res.Status != store.StatusInterrupted || fmt.Sprint(res.Waiting) != fmt.Sprint(want) {
			t.Fatalf("commit = %s waiting %v, want interrupted waiting %v", res.Status, res.Waiting, want)
		}
		rec, err := st.GetRun(ctx, "R")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != store.StatusInterrupted || !EngineDriven(rec) {
			t.Fatalf("run recorded %s, engine-driven %v; want interrupted, driven by the engine", rec.Status, EngineDriven(rec))
		}
	}

	res, _ := step(false, false, nil)
	waitingIs(res, "1/finance", "1/legal")
	if _, err := RecordAnswer(ctx, st, "R", Answer{Values: map[string]any{"ok": true}}, nil, nil); err == nil {
		t.Fatal("an answer for two waiting interrupts without --node was recorded")
	}
	a, err := RecordAnswer(ctx, st, "R", Answer{Node: "legal", Values: map[string]any{"ok": true}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, got := step(true, true, map[string]string{a.Path: a.Nonce})
	waitingIs(res, "1/finance")
	if !got["work"].Recorded || got["legal"].Recorded || got["legal"].Status != store.InvocationOK || !got["finance"].Recorded {
		t.Errorf("second dispatch: work %+v legal %+v finance %+v; want work and finance reused, legal run with its answer",
			got["work"], got["legal"], got["finance"])
	}
	if _, err := RecordAnswer(ctx, st, "R", Answer{Node: "legal", Values: map[string]any{"ok": false}}, nil, nil); err == nil {
		t.Error("a second answer to legal was recorded")
	}
	b, err := RecordAnswer(ctx, st, "R", Answer{Values: map[string]any{"ok": false}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, _ = step(true, true, map[string]string{b.Path: b.Nonce})
	if res.Status != store.StatusCompleted {
		t.Fatalf("last commit: %+v", res)
	}
	out, err := Outcome(ctx, st, "R", nil)
	if err != nil {
		t.Fatal(err)
	}

	// The same answers, given to a local run by two resumes.
	lst := store.NewMemory()
	if _, err := Run(ctx, g, Options{Store: lst, RunID: "L", Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(ctx, lst, "L", Options{Environ: []string{}, Answer: Answer{Node: "legal", Values: map[string]any{"ok": true}}}); err != nil {
		t.Fatal(err)
	}
	want, err := Resume(ctx, lst, "L", Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": false}}})
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := json.Marshal(out.State)
	ws, _ := json.Marshal(want.State)
	if string(gs) != string(ws) {
		t.Errorf("state:\n steps %s\n local %s", gs, ws)
	}
}

// A reopened run (ReopenRun) runs a recorded failure of its step again,
// as a local resume does; a repeated call of the same execution returns
// the failure as recorded. ReopenRun refuses what it cannot reopen.
func TestReopenedRunRerunsFailures(t *testing.T) {
	ctx := context.Background()
	g := compileYAML(t, `
lgx: 1
name: reopen
state: {x: {type: integer}}
nodes:
  a: {type: probe, with: {value: 1}, output: {x: "${{ result }}"}}
edges: [{from: START, to: a}]
`)
	st, open := submitted(t, g)
	p, err := open().Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The step's invocation failed (an earlier worker recorded it).
	if err := st.RecordInvocation(ctx, &store.Invocation{RunID: "R", Path: "1/a", Step: 1, Node: "a", Index: -1,
		Status: store.InvocationFailed, Error: "boom", ErrorKind: "status", Writes: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	r, err := open().Invoke(ctx, Invocation{Node: "a", Index: -1, Lookup: true})
	if err != nil || !r.Recorded || r.Status != store.InvocationFailed {
		t.Fatalf("repeated call: %+v %v; want the recorded failure", r, err)
	}
	if _, err := open().CommitStep(ctx, p.Step); err != nil {
		t.Fatal(err)
	}
	if rec, _ := st.GetRun(ctx, "R"); rec.Status != store.StatusFailed {
		t.Fatalf("run %s, want failed", rec.Status)
	}

	if err := ReopenRun(ctx, st, "R", nil); err != nil {
		t.Fatal(err)
	}
	if err := ReopenRun(ctx, st, "R", nil); err == nil {
		t.Error("a run the engine drives was reopened again")
	}
	r, err = open().Invoke(ctx, Invocation{Node: "a", Index: -1, Lookup: true, Resumed: true})
	if err != nil || r.Recorded || r.Status != store.InvocationOK {
		t.Fatalf("reopened: %+v %v; want the invocation run again", r, err)
	}
	res, err := open().CommitStep(ctx, p.Step)
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("commit: %+v %v", res, err)
	}
	var ie *InputError
	if err := ReopenRun(ctx, st, "R", nil); !errors.As(err, &ie) || !strings.Contains(err.Error(), "already completed") {
		t.Errorf("reopen of a completed run: %v", err)
	}
}

// submitted records a run R of g in a memory store, to be driven step by
// step: open opens it afresh, as each activity of an engine does.
func submitted(t *testing.T, g *Graph) (st store.Store, open func() *StepRun) {
	t.Helper()
	st = store.NewMemory()
	if err := SubmitRun(context.Background(), g, st, "R", nil, nil); err != nil {
		t.Fatal(err)
	}
	return st, func() *StepRun {
		s, err := OpenStep(context.Background(), st, "R", StepOptions{Environ: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
}
