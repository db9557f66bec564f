package nodes

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// FuzzTemplate renders arbitrary templates under a 64 KiB budget and a
// 200ms deadline: no panic, no hang, nothing rendered past the budget, and
// no more than a bounded amount allocated.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{{ .state.s | upper }}`,
		`{{ range until 100000000 }}{{ end }}`,
		`{{ range until 1000 }}{{ range until 1000 }}{{ end }}{{ end }}`,
		`{{ $x := "ab" }}{{ range until 64 }}{{ $x = cat $x $x }}{{ end }}{{ $x }}`,
		`{{ $d := dict }}{{ $_ := set $d "a" $d }}{{ toJson $d }}`,
		`{{ repeat 1000000 "x" }}{{ seq 100000000 }}{{ indent 100000000 "a" }}`,
		`{{ printf "%[1]999999d%[1]999999d" 1 }}`,
		`{{ toPrettyJson (list (list (list (list 1)))) }}`,
		`{{ regexReplaceAll "(a*)" (repeat 1000 "a") "$1$1$1$1" }}`,
		`{{ range .state.list }}{{ . }}{{ end }}`,
	} {
		f.Add(s)
	}
	const limit = 64 << 10
	data := map[string]any{"state": map[string]any{"s": "ab", "n": 3, "list": []any{1, "x", map[string]any{"k": []any{true}}}}}
	f.Fuzz(func(t *testing.T, src string) {
		prep, err := templateType{}.Prepare(map[string]any{"template": src})
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		done := make(chan struct{})
		var out any
		go func() {
			defer close(done)
			out, _ = templateType{}.Run(ctx, &Invocation{With: map[string]any{}, Prepared: prep, Data: data, MaxValueBytes: limit})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%q still running after 5s", src)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q took %s", src, d)
		}
		if s, ok := out.(string); ok && len(s) > limit {
			t.Errorf("%q rendered %d bytes past the %d budget", src, len(s), limit)
		}
		runtime.ReadMemStats(&after)
		if a := after.TotalAlloc - before.TotalAlloc; a > 256<<20 {
			t.Errorf("%q allocated %d MiB under a 64 KiB budget", src, a>>20)
		}
	})
}
