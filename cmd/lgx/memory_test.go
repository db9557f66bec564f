package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// growthWorkflow is a pure loop of `steps` steps, each appending a 1 MiB
// string to a list.
func growthWorkflow(steps int) string {
	return fmt.Sprintf(`lgx: 1
name: append_mb
config: {recursion_limit: 500}
state:
  i:     {type: integer, default: 0}
  blobs: {type: list, reducer: append, default: []}
nodes:
  grow:
    type: template
    with: {template: '{{ repeat 1048576 "x" }}'}
    output:
      i: ${{ state.i + 1 }}
      blobs: ${{ result }}
edges:
  - {from: START, to: grow}
  - from: grow
    when:
      - {if: state.i < %d, to: grow}
    else: END
output: [i]
`, steps)
}

// TestRunMemoryProportionalToState runs the real binary on a loop that
// grows the state by 1 MiB a step, on the SQLite store, and checks its
// peak RSS: the pending batch of pure steps once held a full checkpoint
// per step (64 of them), over 300 MB for this run's 24 MiB of state, and
// every checkpoint re-encoded and copied the whole list.
func TestRunMemoryProportionalToState(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read from rusage, in KiB on Linux")
	}
	const steps = 24
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wf := filepath.Join(dir, "grow.yaml")
	if err := os.WriteFile(wf, []byte(growthWorkflow(steps)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", wf, "-o", "json")
	cmd.Env = append(os.Environ(), "LGX_HOME="+filepath.Join(dir, "lgx"), "CI=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lgx run: %v\n%s", err, out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage")
	}
	rss := ru.Maxrss << 10
	const state = steps << 20
	t.Logf("peak RSS %d MiB for %d MiB of state", rss>>20, state>>20)
	// The state, its encoding kept for the next checkpoint, one move of
	// that buffer, the Go heap's slack (it may reach twice what is live)
	// and the binary itself. Measured: 261 MiB for 48 MiB, 465 MiB for
	// 100 MiB (BENCHMARKS.md).
	if limit := int64(6*state + 64<<20); rss > limit {
		t.Errorf("peak RSS %d MiB for %d MiB of state; want under %d MiB", rss>>20, state>>20, limit>>20)
	}
}
