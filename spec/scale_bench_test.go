package spec

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fanOut returns a valid workflow whose start node fans out to n branches
// that all join into one node: the shape of issue #13's scale target
// (validate a 10,000-branch fan-out in under 100 ms).
func fanOut(n int) []byte {
	var b strings.Builder
	b.WriteString("lgx: 1\nname: fan\nstate:\n  total: {type: integer, reducer: sum, default: 0}\nnodes:\n")
	b.WriteString("  start: {type: set, output: {total: 0}}\n")
	for i := range n {
		fmt.Fprintf(&b, "  b%d: {type: set, output: {total: \"${{ 1 }}\"}}\n", i)
	}
	b.WriteString("  join: {type: set, output: {total: \"${{ state.total }}\"}}\nedges:\n  - {from: START, to: start}\n")
	b.WriteString("  - from: start\n    to: [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "b%d", i)
	}
	b.WriteString("]\n  - from: [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "b%d", i)
	}
	b.WriteString("]\n    to: join\n  - {from: join, to: END}\n")
	return []byte(b.String())
}

// fanOutConditional is fanOut(n) entered through a conditional edge, which
// makes the join check look for sources on different arms.
func fanOutConditional(n int) []byte {
	return []byte(strings.Replace(string(fanOut(n)), "  - {from: START, to: start}\n",
		"  - from: START\n    when:\n      - {if: state.total > 0, to: start}\n    else: start\n", 1))
}

func TestFanOutConditionalIsClean(t *testing.T) {
	w, ds := Load("fan.yaml", fanOutConditional(1000))
	ds = append(ds, Validate(w)...)
	if len(ds) > 0 {
		t.Fatalf("generated workflow is not clean:\n%s", ds.String())
	}
}

func TestFanOutIsClean(t *testing.T) {
	for _, n := range []int{1, 10, 10_000} {
		w, ds := Load("fan.yaml", fanOut(n))
		ds = append(ds, Validate(w)...)
		if len(ds) > 0 {
			t.Fatalf("n=%d: generated workflow is not clean:\n%s", n, ds.String())
		}
		if len(w.Nodes) != n+2 {
			t.Fatalf("n=%d: %d nodes", n, len(w.Nodes))
		}
	}
}

// cpuTime is the process's user+system CPU time, garbage collection on
// other threads included. The benchmarks report it per op because a shared
// machine inflates wall time far more than CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopCPU runs f b.N times and reports its CPU time per op.
func loopCPU(b *testing.B, f func()) {
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkValidateFanOut loads and validates a fan-out of n branches
// joined again (target at 10,000: under 100 ms, linear in n).
func BenchmarkValidateFanOut(b *testing.B) {
	for _, n := range []int{10, 100, 1_000, 10_000} {
		src := fanOut(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			loopCPU(b, func() {
				w, ds := Load("fan.yaml", src)
				ds = append(ds, Validate(w)...)
				if ds.HasErrors() {
					b.Fatal(ds.String())
				}
			})
		})
	}
}

// BenchmarkValidateFanOutConditional is BenchmarkValidateFanOut/10000
// behind a conditional edge (quadratic in the join's sources until #13:
// about 2 s).
func BenchmarkValidateFanOutConditional(b *testing.B) {
	src := fanOutConditional(10_000)
	loopCPU(b, func() {
		w, ds := Load("fan.yaml", src)
		if ds = append(ds, Validate(w)...); len(ds) > 0 {
			b.Fatal(ds.String())
		}
	})
}

// BenchmarkValidateFanOutPhases splits BenchmarkValidateFanOut/10000 into
// its phases: yaml.v3 parsing the file alone, whole and in pieces on every
// core, Load (parsing included) and Validate of the loaded workflow.
func BenchmarkValidateFanOutPhases(b *testing.B) {
	src := fanOut(10_000)
	b.Run("yaml", func(b *testing.B) {
		loopCPU(b, func() {
			if _, err := parseYAML(src); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("pieces", func(b *testing.B) {
		starts := lineStarts(src)
		loopCPU(b, func() {
			if _, ok, _ := parseYAMLPieces(src, starts); !ok {
				b.Fatal("not cut")
			}
		})
	})
	b.Run("load", func(b *testing.B) {
		loopCPU(b, func() {
			if _, ds := Load("fan.yaml", src); len(ds) > 0 {
				b.Fatal(ds.String())
			}
		})
	})
	b.Run("validate", func(b *testing.B) {
		w, _ := Load("fan.yaml", src)
		loopCPU(b, func() {
			if ds := Validate(w); len(ds) > 0 {
				b.Fatal(ds.String())
			}
		})
	})
}
