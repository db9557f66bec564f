package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

// TestMemoryCheckpointsHoldStateNotSteps writes 2000 steps that each
// replace a 10 KB value and bump a counter: the memory store must hold
// about one value (the state), not 2000 (20 MB), and still give resume
// the latest state and position.
func TestMemoryCheckpointsHoldStateNotSteps(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemory()
	if err := m.CreateRun(ctx, &store.Run{ID: "r", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const steps, size = 2000, 10 << 10
	for i := range steps {
		v := json.RawMessage(`"` + strings.Repeat(string(rune('a'+i%26)), size) + `"`)
		cp := &store.Checkpoint{RunID: "r", Step: i, Next: []string{"loop"}, Joins: json.RawMessage(fmt.Sprintf(`{"0":[%t]}`, i%2 == 0)),
			Changed: map[string]json.RawMessage{"big": v, "n": json.RawMessage(fmt.Sprint(i))}}
		if i == 0 {
			cp.Changed["first"] = json.RawMessage(`"only at step 0"`)
		}
		if err := m.WriteCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	grown := int64(heap()) - int64(before)
	t.Logf("%d steps of %d-byte values: heap grew %d bytes", steps, size, grown)
	if grown > 10*size {
		t.Errorf("heap grew %d bytes for %d bytes of state: the store keeps history", grown, size+64)
	}
	cps, err := m.Checkpoints(ctx, "r")
	if err != nil || len(cps) != 1 {
		t.Fatalf("Checkpoints = %d, %v; want one merged", len(cps), err)
	}
	last := cps[0]
	if last.Step != steps-1 || string(last.Changed["n"]) != fmt.Sprint(steps-1) || string(last.Changed["first"]) != `"only at step 0"` ||
		len(last.Changed["big"]) != size+2 || last.Changed["big"][1] != byte('a'+(steps-1)%26) || string(last.Joins) != `{"0":[false]}` {
		t.Errorf("merged checkpoint: step %d, n %s, first %s, joins %s", last.Step, last.Changed["n"], last.Changed["first"], last.Joins)
	}
}
