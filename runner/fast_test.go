package runner

import (
	"reflect"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

// The fast path agrees with the expr VM wherever it answers.
func TestFastPathMatchesVM(t *testing.T) {
	exprs := []string{
		"state.n", "state.n + 1", "state.n - 2", "state.n * 3", "state.f + 1", "state.n + state.f",
		"state.n < 10", "state.n >= 5", "state.n == 5", "state.n != 5", "state.f == 2.5", "state.n == 5.0",
		"state.s + '!'", "state.s < 'b'", "state.s == 'abc'", "state.missing", "state.missing == nil",
		"item", "index", "result", "result.k", "item.k", "1", "2.5", "'x'", "true", "nil",
		"state.s + state.n", "state.n + state.s", "state.l", "result.k + 1",
		"result.k == 7 ? 1 : 0", "state.n > 2 ? state.s : 'small'", "state.s ? 1 : 2", "result.k ? 1 : 2",
		"state.n < 0 ? state.n * 2 : (state.f > 1 ? 'big' : nil)",
	}
	envs := []*exprEnv{
		{State: map[string]any{"n": 5, "f": 2.5, "s": "abc", "l": []any{1}}, Item: map[string]any{"k": "v"}, Index: 3,
			Result: map[string]any{"k": 7}},
		{State: map[string]any{"n": -1, "f": -0.5, "s": "", "l": nil}, Item: "scalar", Result: "text"},
		{State: map[string]any{"n": 1 << 40, "f": 1e300, "s": "zz"}, Result: nil},
	}
	c := &compiler{file: "t"}
	fastCount := 0
	for _, src := range exprs {
		p, err := c.program(src, spec.Pos{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if p.fast == nil {
			continue
		}
		fastCount++
		for i, env := range envs {
			fv, ok := p.fast(env)
			vv, verr := (&progVal{prog: p.prog, src: src}).eval(env)
			if !ok {
				continue
			}
			if verr != nil {
				t.Errorf("%s env %d: fast path answered %v where the VM fails: %v", src, i, fv, verr)
				continue
			}
			if !reflect.DeepEqual(normalize(fv), vv) {
				t.Errorf("%s env %d: fast %#v, VM %#v", src, i, fv, vv)
			}
		}
	}
	if fastCount < 20 {
		t.Errorf("only %d expressions took the fast path", fastCount)
	}
}
