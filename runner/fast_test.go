package runner

import (
	"fmt"
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
	// The expressions of a counter loop and a string build stay on it,
	// after limitPatch has made `+` a call of its bounded twin.
	for _, src := range []string{"state.n + 1", "state.s + '!'", "result.k + state.n", "state.n + 1 > 3 ? 'a' : 'b'"} {
		if p, err := c.program(src, spec.Pos{}); err != nil || p.fast == nil {
			t.Errorf("%s: not on the fast path (err %v)", src, err)
		}
	}
}

// FuzzFastPathMatchesVM: for expressions built from the fast subset's
// shapes over fuzzed operands, the fast path either declines or gives
// exactly what expr's VM gives (the VM defines the semantics).
func FuzzFastPathMatchesVM(f *testing.F) {
	f.Add(uint8(0), uint8(0), int64(5), int64(1), 2.5, "abc", "x")
	f.Add(uint8(3), uint8(1), int64(-1), int64(1<<40), -0.5, "", "zz")
	f.Add(uint8(7), uint8(2), int64(9223372036854775807), int64(1), 1e300, "b", "a")
	ops := []string{"+", "-", "*", "<", "<=", ">", ">=", "==", "!="}
	shapes := []string{
		"state.a %s state.b", "state.a %s state.f", "state.f %s state.b", "state.s %s state.t",
		"state.a %s 1", "state.s %s 'lit'", "state.s %s state.a", "state.a %s state.b ? state.s : state.f",
		"result.k %s item", "(state.a %s state.b) == true",
	}
	c := &compiler{file: "fuzz"}
	f.Fuzz(func(t *testing.T, op, shape uint8, a, b int64, fl float64, s1, s2 string) {
		src := fmt.Sprintf(shapes[int(shape)%len(shapes)], ops[int(op)%len(ops)])
		p, err := c.program(src, spec.Pos{})
		if err != nil || p.fast == nil {
			return // refused by the checker (e.g. string - string), or not fast
		}
		env := &exprEnv{State: map[string]any{"a": int(a), "b": int(b), "f": fl, "s": s1, "t": s2},
			Item: int(b), Result: map[string]any{"k": int(a)}}
		fv, ok := p.fast(env)
		if !ok {
			return
		}
		vv, verr := (&progVal{prog: p.prog, src: src}).eval(env)
		if verr != nil {
			t.Fatalf("%s with %v: fast path answered %#v where the VM fails: %v", src, env.State, fv, verr)
		}
		if fn, vn := normalize(fv), vv; !reflect.DeepEqual(fn, vn) && !(isNaN(fn) && isNaN(vn)) {
			t.Fatalf("%s with %v: fast %#v, VM %#v", src, env.State, fv, vv)
		}
	})
}

func isNaN(v any) bool {
	f, ok := v.(float64)
	return ok && f != f
}
