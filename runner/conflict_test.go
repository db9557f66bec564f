package runner

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

// compileUnvalidated loads and compiles a workflow without spec.Validate,
// for workflows validate rejects but the runner must still refuse safely.
func compileUnvalidated(t *testing.T, src string) *Graph {
	t.Helper()
	w, ds := spec.Load("test.yaml", []byte(strings.ReplaceAll(src, "\t", "  ")))
	if ds.HasErrors() {
		t.Fatalf("load: %v", ds.Errors())
	}
	g, err := Compile(w)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return g
}

// TestConflictBeforeSideEffects: a step whose writers conflict on a
// replace key fails when it is formed; none of its POSTs is sent (SPEC
// §9.5).
func TestConflictBeforeSideEffects(t *testing.T) {
	var posts atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
	}))
	defer ts.Close()
	post := func(name string) string {
		return `
  ` + name + `:
    type: http_fetch
    with: {url: "${{ state.url }}", method: POST, body: "` + name + `"}
    output: {x: "${{ result.status }}"}`
	}
	tests := []struct {
		name      string
		src       string
		validated bool // validate only warns: compile through it
		writers   []string
		step      int
	}{
		{
			name: "two unconditional edges from START",
			src: `nodes:` + post("a") + post("b") + `
edges:
  - {from: START, to: a}
  - {from: START, to: b}
`,
			writers: []string{"a", "b"}, step: 1,
		},
		{
			name: "a conditional path that validate only warns about",
			src: `nodes:
  g:
    type: set
    output: {go: true}` + post("a") + post("b") + `
edges:
  - {from: START, to: g}
  - from: g
    when:
      - {if: "state.go", to: a}
    else: END
  - {from: g, to: b}
`,
			validated: true, writers: []string{"a", "b"}, step: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			posts.Store(0)
			src := `
lgx: 1
name: t
state:
  url: string
  x: integer
  go: boolean
` + tt.src
			var g *Graph
			if tt.validated {
				g = compileYAML(t, src)
			} else {
				g = compileUnvalidated(t, src)
			}
			res, err := Run(context.Background(), g, Options{Inputs: map[string]any{"url": ts.URL}, Environ: []string{}})
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConflictError", err)
			}
			if ce.Key != "x" || ce.Step != tt.step || !slices.Equal(ce.Writers, tt.writers) {
				t.Errorf("conflict = %+v, want key x at step %d by %v", ce, tt.step, tt.writers)
			}
			if n := posts.Load(); n != 0 {
				t.Errorf("the server received %d POSTs, want none", n)
			}
			if res == nil || res.Status != "failed" {
				t.Errorf("result = %+v, want failed", res)
			}
		})
	}
}

// TestPlanConflicts: the plan-time check finds the key and writers apply
// would, for_each items counted one by one (none when there are none).
func TestPlanConflicts(t *testing.T) {
	tests := []struct {
		name    string
		nodes   string
		edges   string
		items   []any
		key     string // "" = no conflict
		writers []string
	}{
		{
			name: "for_each with no items writes nothing",
			nodes: `
  p:
    type: set
    output: {b: 1}
  x:
    type: probe
    for_each: ${{ state.items }}
    with: {value: 1}
    output: {a: 1, b: 2}`,
			edges: "[p, x]",
			items: []any{},
		},
		{
			name: "for_each with one item beside a writer of another key",
			nodes: `
  p:
    type: set
    output: {c: 1}
  x:
    type: probe
    for_each: ${{ state.items }}
    with: {value: 1}
    output: {a: 1, b: 2}`,
			edges: "[p, x]",
			items: []any{1},
		},
		{
			name: "for_each items rewrite their own key",
			nodes: `
  x:
    type: probe
    for_each: ${{ state.items }}
    with: {value: 1}
    output: {c: 0, a: 1, b: 2}`,
			edges: "x",
			items: []any{1, 2, 3},
			key:   "a", writers: []string{"x[0]", "x[1]", "x[2]"},
		},
		{
			// apply meets b twice at x's first item, before x's second
			// item rewrites a.
			name: "a key written earlier wins over the items' own",
			nodes: `
  p:
    type: set
    output: {b: 1}
  x:
    type: probe
    for_each: ${{ state.items }}
    with: {value: 1}
    output: {a: 1, b: 2}`,
			edges: "[p, x]",
			items: []any{1, 2, 3},
			key:   "b", writers: []string{"p", "x[0]", "x[1]", "x[2]"},
		},
		{
			name: "append keys never conflict",
			nodes: `
  p:
    type: set
    output: {c: 1}
  q:
    type: set
    output: {c: 2}`,
			edges: "[p, q]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileUnvalidated(t, `
lgx: 1
name: t
state:
  items: list
  a: integer
  b: integer
  c: {type: list, reducer: append}
nodes:`+tt.nodes+`
edges:
  - {from: START, to: `+tt.edges+`}
`)
			_, err := Run(context.Background(), g, Options{Inputs: map[string]any{"items": tt.items}, Environ: []string{}})
			var ce *ConflictError
			switch {
			case tt.key == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.key == "":
			case !errors.As(err, &ce):
				t.Fatalf("err = %v, want *ConflictError", err)
			case ce.Key != tt.key || !slices.Equal(ce.Writers, tt.writers):
				t.Errorf("conflict = %+v, want key %s by %v", ce, tt.key, tt.writers)
			}
		})
	}
}
