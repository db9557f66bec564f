package runner

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// FuzzExpr compiles and evaluates arbitrary expressions against a small
// state under a 64 KiB budget and a 200ms timeout: no panic, no hang, no
// value past the budget, and no more than a bounded amount allocated.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		`state.n + 1`,
		`state.s + state.s`,
		`repeat(repeat("ab", 499999), 20000)`,
		`len(1..1000000000)`,
		`reduce(1..64, #acc + #acc, "ab")`,
		`map(1..1000, sort(state.list))`,
		`count(1..100000, any(1..100000, # < 0))`,
		`let a = [state.list, state.list]; let b = [a, a]; let c = [b, b]; toJSON([c, c])`,
		`join(map(1..10000, "x"), repeat("y", 100))`,
		`replace(repeat("x", 1000), "", repeat("y", 1000))`,
		`1 % 0`,
		`fromJSON(toJSON(state.m))`,
		`split(repeat("a,", 10000), ",")`,
		`groupBy(1..10000, # % 3)`,
	} {
		f.Add(s)
	}
	const limit = 64 << 10
	state := map[string]any{"n": 3, "s": "ab", "list": []any{3, 1, 2}, "m": map[string]any{"k": []any{"v"}}}
	f.Fuzz(func(t *testing.T, src string) {
		c := &compiler{file: "fuzz.yaml", limit: limit}
		pv, err := c.program(src, spec.Pos{Line: 1, Col: 1})
		if err != nil {
			return
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		done := make(chan struct{})
		var v any
		var evalErr error
		go func() {
			defer close(done)
			v, evalErr = pv.eval(&exprEnv{State: state, ctx: context.Background(), timeout: 200 * time.Millisecond})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%q still running after 5s", src)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q took %s", src, d)
		}
		if evalErr == nil && nodes.ValueSize(v, limit+1) > limit {
			t.Errorf("%q built a value past the %d-byte budget", src, limit)
		}
		runtime.ReadMemStats(&after)
		if a := after.TotalAlloc - before.TotalAlloc; a > 256<<20 {
			t.Errorf("%q allocated %d MiB under a 64 KiB budget", src, a>>20)
		}
	})
}
