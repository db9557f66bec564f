package runner

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runYAML compiles and runs a workflow with inputs.
func runYAML(t *testing.T, src string, inputs map[string]any, opts ...func(*Options)) (*Result, error) {
	t.Helper()
	g := compileYAML(t, src)
	o := Options{Inputs: inputs, Environ: []string{}}
	for _, f := range opts {
		f(&o)
	}
	return Run(context.Background(), g, o)
}

func TestExecutorSemantics(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		inputs  map[string]any
		want    map[string]any // subset of the final state
		steps   int
		wantErr []string // substrings of the error
	}{
		{
			name: "fan-out then join in one step",
			src: `
lgx: 1
name: t
state:
  log: {type: list, reducer: append, default: []}
nodes:
  a: {type: set, output: {log: a}}
  b: {type: set, output: {log: b}}
  c: {type: set, output: {log: c}}
edges:
  - {from: START, to: [b, a]}
  - {from: [a, b], to: c}
`,
			want:  map[string]any{"log": []any{"a", "b", "c"}},
			steps: 2,
		},
		{
			name: "join waits for sources across steps",
			src: `
lgx: 1
name: t
state:
  log: {type: list, reducer: append, default: []}
nodes:
  a: {type: set, output: {log: a}}
  b1: {type: set, output: {log: b1}}
  b2: {type: set, output: {log: b2}}
  j: {type: set, output: {log: j}}
edges:
  - {from: START, to: [a, b1]}
  - {from: b1, to: b2}
  - {from: [a, b2], to: j}
`,
			want:  map[string]any{"log": []any{"a", "b1", "b2", "j"}},
			steps: 3,
		},
		{
			name: "when first match after the barrier, else",
			src: `
lgx: 1
name: t
state:
  n: {type: integer, default: 0}
  path: {type: string}
nodes:
  inc: {type: set, output: {n: "${{ state.n + 5 }}"}}
  big: {type: set, output: {path: big}}
  mid: {type: set, output: {path: mid}}
  small: {type: set, output: {path: small}}
edges:
  - {from: START, to: inc}
  - from: inc
    when:
      - {if: state.n >= 5, to: big}
      - {if: state.n >= 1, to: mid}
    else: small
`,
			want:  map[string]any{"n": 5, "path": "big"},
			steps: 2,
		},
		{
			name: "else taken",
			src: `
lgx: 1
name: t
state:
  n: {type: integer, default: 0}
  path: {type: string}
nodes:
  inc: {type: set, output: {n: "${{ state.n - 1 }}"}}
  big: {type: set, output: {path: big}}
  small: {type: set, output: {path: small}}
edges:
  - {from: START, to: inc}
  - from: inc
    when:
      - {if: "${{ state.n > 0 }}", to: big}
    else: small
`,
			want: map[string]any{"n": -1, "path": "small"},
		},
		{
			name: "END triggers nothing",
			src: `
lgx: 1
name: t
state:
  x: {type: integer, default: 0}
nodes:
  a: {type: set, output: {x: 1}}
  b: {type: set, output: {x: 2}}
edges:
  - {from: START, to: a}
  - {from: a, to: END}
  - {from: b, to: END}
`,
			want:  map[string]any{"x": 1},
			steps: 1,
		},
		{
			name: "loop until condition",
			src: `
lgx: 1
name: t
state:
  n: {type: integer, default: 0}
nodes:
  inc: {type: set, output: {n: "${{ state.n + 1 }}"}}
edges:
  - {from: START, to: inc}
  - from: inc
    when:
      - {if: state.n < 10, to: inc}
    else: END
`,
			want:  map[string]any{"n": 10},
			steps: 10,
		},
		{
			name: "recursion limit lets exactly N steps run",
			src: `
lgx: 1
name: t
config: {recursion_limit: 10}
state:
  n: {type: integer, default: 0}
nodes:
  inc: {type: set, output: {n: "${{ state.n + 1 }}"}}
edges:
  - {from: START, to: inc}
  - from: inc
    when:
      - {if: state.n < 10, to: inc}
`,
			want:  map[string]any{"n": 10},
			steps: 10,
		},
		{
			name: "recursion limit exceeded names limit and nodes",
			src: `
lgx: 1
name: t
config: {recursion_limit: 10}
state:
  n: {type: integer, default: 0}
nodes:
  inc: {type: set, output: {n: "${{ state.n + 1 }}"}}
edges:
  - {from: START, to: inc}
  - from: inc
    when:
      - {if: state.n < 11, to: inc}
`,
			want:    map[string]any{"n": 10},
			steps:   10,
			wantErr: []string{"recursion limit of 10", "inc"},
		},
		{
			name: "replace conflict names key, step, writers and suggests a reducer",
			src: `
lgx: 1
name: t
state:
  x: {type: string}
  go: {type: boolean, default: true}
nodes:
  start: {type: set}
  a: {type: set, output: {x: a}}
  b: {type: set, output: {x: b}}
edges:
  - {from: START, to: start}
  - from: start
    when:
      - {if: state.go, to: a}
  - from: start
    when:
      - {if: state.go, to: b}
`,
			wantErr: []string{`state key "x"`, "step 2", "a, b", "reducer"},
		},
		{
			name: "snapshot isolation: siblings never see each other's writes",
			src: `
lgx: 1
name: t
state:
  a: {type: integer, default: 1}
  b: {type: integer, default: 1}
nodes:
  x: {type: set, output: {a: "${{ state.b + 10 }}"}}
  y: {type: set, output: {b: "${{ state.a + 100 }}"}}
edges:
  - {from: START, to: [x, y]}
`,
			want: map[string]any{"a": 11, "b": 101},
		},
		{
			name: "for_each items applied in index order with loop var and index",
			src: `
lgx: 1
name: t
state:
  urls: {type: list, default: [u1, u2, u3, u4]}
  out: {type: list, reducer: append, default: []}
nodes:
  fetch:
    type: probe
    for_each: ${{ state.urls }}
    as: url
    with: {rand_ms: 3, value: "${{ url }}"}
    output: {out: "${{ index }}:${{ result }}"}
edges:
  - {from: START, to: fetch}
`,
			want: map[string]any{"out": []any{"0:u1", "1:u2", "2:u3", "3:u4"}},
		},
		{
			name: "on_error continue: output sees error, run goes on",
			src: `
lgx: 1
name: t
state:
  msg: {type: string}
  kind: {type: string}
  after: {type: boolean, default: false}
nodes:
  f:
    type: probe
    with: {fail: status, status: 404}
    on_error: continue
    output:
      msg: "${{ result == nil ? error.message : 'ok' }}"
      kind: ${{ error.kind }}
  g: {type: set, output: {after: true}}
edges:
  - {from: START, to: f}
  - {from: f, to: g}
`,
			want: map[string]any{"msg": "probe failure 1", "kind": "status", "after": true},
		},
		{
			name: "for_each item continue keeps other items",
			src: `
lgx: 1
name: t
state:
  out: {type: list, reducer: append, default: []}
nodes:
  f:
    type: probe
    for_each: [1, 2]
    with: {fail: "${{ item == 2 ? 'network' : '' }}", value: "${{ item }}"}
    retry: {attempts: 1}
    on_error: continue
    output: {out: "${{ error == nil ? result : 'failed ' + error.kind }}"}
edges:
  - {from: START, to: f}
`,
			want: map[string]any{"out": []any{1, "failed network"}},
		},
		{
			name: "for_each item continue: a failed item's null result keeps its place",
			src: `
lgx: 1
name: t
state:
  out: {type: list, reducer: append, default: []}
nodes:
  f:
    type: probe
    for_each: [1, 2, 3]
    with: {fail: "${{ item == 2 ? 'network' : '' }}", value: "${{ item }}"}
    retry: {attempts: 1}
    on_error: continue
    output: {out: "${{ result }}"}
edges:
  - {from: START, to: f}
`,
			want: map[string]any{"out": []any{1, nil, 3}},
		},
		{
			name: "append: an empty list adds nothing",
			src: `
lgx: 1
name: t
state:
  out: {type: list, reducer: append, default: []}
nodes:
  f:
    type: probe
    for_each: [1, 2, 3]
    with: {value: "${{ item }}"}
    output: {out: "${{ result == 2 ? [] : result }}"}
edges:
  - {from: START, to: f}
`,
			want: map[string]any{"out": []any{1, 3}},
		},
		{
			name: "node failure names node, item index and cause",
			src: `
lgx: 1
name: t
state:
  out: {type: list, reducer: append, default: []}
nodes:
  f:
    type: probe
    for_each: [1, 2, 3]
    with: {fail: "${{ item == 2 ? 'status' : '' }}", status: 404}
edges:
  - {from: START, to: f}
`,
			wantErr: []string{"node f item 1", "probe failure", "status"},
		},
		{
			name: "type error names node, key, expected and actual",
			src: `
lgx: 1
name: t
state:
  n: {type: integer}
nodes:
  f: {type: set, output: {n: "not a number"}}
edges:
  - {from: START, to: f}
`,
			wantErr: []string{"node f", `"n"`, "expected integer", "got string"},
		},
		{
			name: "integral float written to integer key becomes int",
			src: `
lgx: 1
name: t
state:
  n: {type: integer}
  x: {type: number}
nodes:
  f: {type: set, output: {n: "${{ 4.0 }}", x: 3}}
edges:
  - {from: START, to: f}
`,
			want: map[string]any{"n": 4, "x": 3.0},
		},
		{
			name: "interpolation renders lists as JSON and keeps single-expression types",
			src: `
lgx: 1
name: t
state:
  l: {type: list, default: [1, "a"]}
  s: {type: string}
  copy: {type: list}
nodes:
  f:
    type: set
    output:
      s: "l=${{ state.l }} n=${{ 1.5 }} b=${{ true }} z=${{ nil }}"
      copy: ${{ state.l }}
edges:
  - {from: START, to: f}
`,
			want: map[string]any{"s": `l=[1,"a"] n=1.5 b=true z=`, "copy": []any{1, "a"}},
		},
		{
			name: "a node triggered twice for one step runs once",
			src: `
lgx: 1
name: t
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  a: {type: set}
  b: {type: set}
  c: {type: set, output: {n: 1}}
edges:
  - {from: START, to: [a, b]}
  - {from: a, to: c}
  - {from: b, to: c}
`,
			want: map[string]any{"n": 1},
		},
		{
			name: "whole state as a value is a copy",
			src: `
lgx: 1
name: t
state:
  snap: {type: object}
  n: {type: integer, default: 1}
nodes:
  a: {type: set, output: {snap: "${{ state }}"}}
  b: {type: set, output: {n: 2}}
edges:
  - {from: START, to: a}
  - {from: a, to: b}
`,
			want: map[string]any{"snap": map[string]any{"snap": nil, "n": 1}, "n": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := runYAML(t, tt.src, tt.inputs)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; state %v", res.State)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if res == nil || res.Status != store.StatusFailed {
					t.Errorf("status = %v, want failed", res)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if res == nil {
				return
			}
			for k, v := range tt.want {
				if !reflect.DeepEqual(res.State[k], v) {
					t.Errorf("state[%s] = %#v, want %#v", k, res.State[k], v)
				}
			}
			if tt.steps > 0 && res.Steps != tt.steps {
				t.Errorf("steps = %d, want %d", res.Steps, tt.steps)
			}
		})
	}
}

func TestInputs(t *testing.T) {
	src := `
lgx: 1
name: t
state:
  q: {type: string, required: true}
  n: {type: integer, default: 2}
  l: {type: list, default: []}
nodes:
  a: {type: set}
edges:
  - {from: START, to: a}
`
	tests := []struct {
		name    string
		inputs  map[string]any
		wantErr string
		want    map[string]any
	}{
		{"defaults", map[string]any{"q": "x"}, "", map[string]any{"q": "x", "n": 2, "l": []any{}}},
		{"json number for integer", map[string]any{"q": "x", "n": 5.0}, "", map[string]any{"n": 5}},
		{"missing required", map[string]any{}, "missing required input(s): q", nil},
		{"undeclared", map[string]any{"q": "x", "nn": 1}, `input "nn" is not a declared state key (did you mean "n"?)`, nil},
		{"wrong type", map[string]any{"q": 1}, `input "q": expected string, got integer`, nil},
		// A YAML input file's .inf and .nan: refused, named, before the run.
		{"not JSON", map[string]any{"q": "x", "l": []any{1, math.NaN()}}, `input "l": the value is not JSON: NaN at [1]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := runYAML(t, src, tt.inputs)
			if tt.wantErr != "" {
				var ie *InputError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want InputError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if !reflect.DeepEqual(res.State[k], v) {
					t.Errorf("state[%s] = %#v, want %#v", k, res.State[k], v)
				}
			}
		})
	}
}
