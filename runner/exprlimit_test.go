package runner

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// evalExpr compiles and evaluates src as a run would, under limit bytes
// and a timeout (a minute unless given: limits must not depend on it).
func evalExpr(t testing.TB, src string, limit int64, state map[string]any, timeout ...time.Duration) (any, error) {
	t.Helper()
	c := &compiler{file: "t.yaml", limit: limit}
	pv, err := c.program(src, spec.Pos{Line: 1, Col: 1})
	if err != nil {
		t.Fatalf("compile %s: %v", src, err)
	}
	d := time.Minute
	if len(timeout) > 0 {
		d = timeout[0]
	}
	return pv.eval(&exprEnv{State: state, ctx: context.Background(), timeout: d})
}

// TestExprLimits: expressions that would exhaust memory or run forever
// fail with kind limit or timeout, quickly.
func TestExprLimits(t *testing.T) {
	state := map[string]any{"s": "ab", "n": 20000, "list": []any{1, 2, 3}}
	big := make([]any, 3000)
	for i := range big {
		big[i] = i
	}
	state["big"] = big
	tests := []struct {
		src   string
		limit int64
		kind  nodes.Kind
	}{
		{`repeat(repeat("ab", 499999), 20000)`, 0, nodes.KindLimit},
		{`repeat(state.s, 1000000000)`, 0, nodes.KindLimit},
		{`len(1..1000000000)`, 0, nodes.KindLimit},
		{`map(1..900000, 1..900000)`, 0, nodes.KindLimit},
		{`reduce(1..64, #acc + #acc, "ab")`, 0, nodes.KindLimit},
		{`reduce(1..64, state.s + #acc + #acc, "ab")`, 0, nodes.KindLimit},
		{`reduce(1..64, concat(#acc, #acc), [1])`, 0, nodes.KindLimit},
		{`reduce(1..64, join([#acc, #acc]), "ab")`, 0, nodes.KindLimit},
		{`join(map(1..100000, "x"), repeat("y", 1000))`, 0, nodes.KindLimit},
		{`replace(repeat("x", 100000), "", repeat("y", 1000))`, 0, nodes.KindLimit},
		{`let a = [state.big, state.big]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; let i = [h, h]; let j = [i, i]; [j, j]`, 0, nodes.KindLimit},
		{`let a = [state.big, state.big]; let b = [a, a]; let c = [b, b]; let d = [c, c]; let e = [d, d]; let f = [e, e]; let g = [f, f]; let h = [g, g]; toJSON([h, h])`, 0, nodes.KindLimit},
		{`map(1..1000, sort(state.big))`, 1 << 20, nodes.KindLimit},
		{`map(1..1000, groupBy(state.big, # % 7))`, 1 << 20, nodes.KindLimit},
		{`upper(repeat(state.s, 600))`, 1000, nodes.KindLimit},
		{`count(state.big, any(state.big, all(state.big, # >= 0) && # < 0))`, 1 << 40, nodes.KindTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			start := time.Now()
			timeout := time.Minute
			if tt.kind == nodes.KindTimeout {
				timeout = 300 * time.Millisecond
			}
			v, err := evalExpr(t, tt.src, tt.limit, state, timeout)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if err == nil {
				t.Fatalf("= %.80v, want a %s failure", v, tt.kind)
			}
			if k := exprKind(err); k != tt.kind {
				t.Fatalf("kind %s (%v), want %s", k, err, tt.kind)
			}
			if tt.kind == nodes.KindLimit && !strings.Contains(err.Error(), "exceeds config.max_value_bytes") {
				t.Errorf("message %q does not name the limit", err)
			}
		})
	}
}

// TestExprBoundedUnchanged: the bounded twins compute what the builtins
// compute, on the fast path and the VM.
func TestExprBoundedUnchanged(t *testing.T) {
	state := map[string]any{"s": "ab", "n": 2, "f": 1.5, "l": []any{"b", "a", "b"}, "m": map[string]any{"k": 1}}
	tests := []struct {
		src  string
		want any
	}{
		{`repeat(state.s, 3)`, "ababab"},
		{`join(state.l, "-")`, "b-a-b"},
		{`join(["x", "y"])`, "xy"},
		{`split("a,b,c", ",")`, []any{"a", "b", "c"}},
		{`split("a,b,c", ",", 2)`, []any{"a", "b,c"}},
		{`splitAfter("a,b", ",")`, []any{"a,", "b"}},
		{`replace("banana", "a", "oo")`, "boonoonoo"},
		{`upper(state.s) + lower("CD")`, "ABcd"},
		{`toJSON(state.m)`, "{\n  \"k\": 1\n}"},
		{`fromJSON("[1.5]")`, []any{1.5}},
		{`toBase64("hi") + fromBase64("aGk=")`, "aGk=hi"},
		{`string(state.n)`, "2"},
		{`keys(state.m)`, []any{"k"}},
		{`values(state.m)`, []any{1}},
		{`reverse([1, 2])`, []any{2, 1}},
		{`uniq(state.l)`, []any{"b", "a"}},
		{`concat([1], [2])`, []any{1, 2}},
		{`flatten([[1], [2, [3]]])`, []any{1, 2, 3}},
		{`sort([3, 1])`, []any{1, 3}},
		{`take([1, 2, 3], 2)`, []any{1, 2}},
		{`state.n + 1`, 3},
		{`state.f + state.n`, 3.5},
		{`state.s + "c"`, "abc"},
		{`1 + 2`, 3},
		{`reduce(1..4, #acc + #, 0)`, 10},
		{`map(filter(1..6, # % 2 == 0), # * 10)`, []any{20, 40, 60}},
		{`len(groupBy(state.l, #))`, 2},
		{`sum(1..3, # * 2)`, 12},
	}
	for _, tt := range tests {
		got, err := evalExpr(t, tt.src, 0, state)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %#v, %v; want %#v", tt.src, got, err, tt.want)
		}
	}
}

// TestExprFastPathBounded: the fast path joins short strings itself and
// hands long ones to the VM, which counts them.
func TestExprFastPathBounded(t *testing.T) {
	c := &compiler{file: "t.yaml", limit: 10000}
	pv, err := c.program(`state.a + state.b`, spec.Pos{Line: 1, Col: 1})
	if err != nil {
		t.Fatal(err)
	}
	if pv.fast == nil {
		t.Fatal("state.a + state.b is not on the fast path")
	}
	v, err := pv.eval(&exprEnv{State: map[string]any{"a": "x", "b": "y"}})
	if err != nil || v != "xy" {
		t.Fatalf("= %v, %v", v, err)
	}
	long := strings.Repeat("x", 6000)
	_, err = pv.eval(&exprEnv{State: map[string]any{"a": long, "b": long}})
	var le *nodes.LimitError
	if !errors.As(err, &le) || le.Limit != 10000 {
		t.Fatalf("err = %v, want the 10000-byte limit", err)
	}
}
