package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestSummaryExtend: a summary extended by a suffix equals the summary of
// the extended value built whole (its blocks, end, length and kind), for
// prefixes ending before, on and after block ends.
func TestSummaryExtend(t *testing.T) {
	const b = summaryBlock
	for _, tc := range []struct {
		name        string
		start, adds []int // the value's length; then the sizes of the suffixes added
	}{
		{"within a block", []int{b + 10}, []int{5, 7}},
		{"to a block end", []int{b + 10}, []int{b - 11, 1}},
		{"from a block end", []int{2*b + 1}, []int{3}},
		{"across several blocks", []int{bigCached}, []int{3*b + 17, 1, b}},
		{"nothing added", []int{b + 5}, []int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := []byte("[" + strings.Repeat("1,", (tc.start[0]-2)/2))
			v = append(v[:tc.start[0]-1:tc.start[0]-1], ']')
			cv := newCachedValue(1, v)
			for i, n := range tc.adds {
				suf := append(bytes.Repeat([]byte{'2'}, n), ']')
				cv.sum.extend(suf)
				v = append(v[:len(v)-1:len(v)-1], suf...)
				want := newCachedValue(1, v).sum
				got := cv.sum
				if got.n != want.n || got.end != want.end || got.first != want.first || got.emptyList != want.emptyList ||
					fmt.Sprint(got.blocks) != fmt.Sprint(want.blocks) {
					t.Fatalf("after suffix %d: summary n=%d %d blocks, want n=%d %d blocks (or sums differ)",
						i, got.n, len(got.blocks), want.n, len(want.blocks))
				}
			}
		})
	}
}

// TestExtensionsStoreOnlyTheTail: a large value extended 50 times is
// stored as its first value plus the tails (the database grows by about
// what was added), and reads back whole after reopening.
func TestExtensionsStoreOnlyTheTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.CreateRun(ctx, &Run{ID: "r", Workflow: "w", Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	elem := `"` + strings.Repeat("z", 10<<10) + `"`
	v := []byte("[" + elem + "]")
	if err := s.WriteCheckpoint(ctx, &Checkpoint{RunID: "r", Step: 0, Changed: map[string]json.RawMessage{"l": v}}); err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 50; step++ {
		x := Extension{Base: len(v), Tail: json.RawMessage("[" + elem + "]")}
		if err := s.WriteCheckpoint(ctx, &Checkpoint{RunID: "r", Step: step, Extended: map[string]Extension{"l": x}}); err != nil {
			t.Fatal(err)
		}
		v = append(append(v[:len(v)-1:len(v)-1], ','), elem+"]"...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size, err := s.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	if size > 2<<20 { // 51 × 10 KiB written; whole values would be 13 MB
		t.Errorf("database is %d bytes, want under 2 MiB", size)
	}
	cps, err := s.Checkpoints(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if got := cps[len(cps)-1].Changed["l"]; !bytes.Equal(got, v) {
		t.Errorf("last value is %d bytes, want %d", len(got), len(v))
	}
}

// TestMergedCheckpointMemory: folding a run whose list grew to 15 MiB over
// 60 steps allocates in proportion to the list (it is rebuilt in one
// buffer), where Checkpoints allocates every step's value (500 MiB).
func TestMergedCheckpointMemory(t *testing.T) {
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateRun(ctx, &Run{ID: "r", Workflow: "w", Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	elem := `"` + strings.Repeat("m", 256<<10) + `"`
	n := 0
	for step := range 60 {
		cp := &Checkpoint{RunID: "r", Step: step, Changed: map[string]json.RawMessage{"i": json.RawMessage(fmt.Sprint(step))}}
		if step == 0 {
			cp.Changed["l"] = json.RawMessage("[" + elem + "]")
			n = len(elem) + 2
		} else {
			cp.Extended = map[string]Extension{"l": {Base: n, Tail: json.RawMessage("[" + elem + "]")}}
			n += len(elem) + 1
		}
		if err := s.WriteCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	alloc := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	var merged *Checkpoint
	mergedAlloc := alloc(func() {
		var err error
		if merged, err = s.MergedCheckpoint(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	})
	allAlloc := alloc(func() {
		cps, err := s.Checkpoints(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		last := cps[len(cps)-1]
		if !bytes.Equal(merged.Changed["l"], last.Changed["l"]) || string(merged.Changed["i"]) != "59" || merged.Step != 59 {
			t.Fatalf("merged checkpoint differs from the last step's values")
		}
	})
	t.Logf("list %d MiB: MergedCheckpoint allocates %d MiB, Checkpoints %d MiB", n>>20, mergedAlloc>>20, allAlloc>>20)
	// The list's buffer (doubling: up to 2 times) and each tail read
	// three times (the driver, database/sql's copy, the delta record).
	if mergedAlloc > uint64(8*n) {
		t.Errorf("MergedCheckpoint allocates %d MiB for a %d MiB list; want under 8 times the list", mergedAlloc>>20, n>>20)
	}
}
