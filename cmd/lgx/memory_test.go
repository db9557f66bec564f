package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestRunMemoryProportionalToState runs the real binary on a loop that
// grows the state by 1 MiB a step to 100 MiB, on the SQLite store, and
// checks its peak RSS is under 400 MB (issue 12): the pending batch of
// pure steps once held a full checkpoint per step (6.7 GB), then the run
// kept the whole list's encoding to extend it (465 MiB); now each
// checkpoint carries only the element added (store.Extension).
func TestRunMemoryProportionalToState(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read from rusage, in KiB on Linux")
	}
	const steps = 100
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wf := filepath.Join("..", "..", "runner", "testdata", "append_mb.yaml") // 100 steps of 1 MiB
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
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	t.Logf("peak RSS %d MiB, CPU %v for %d MiB of state", rss>>20, cpu.Round(time.Millisecond), state>>20)
	// The state, one step's write and record, and the Go heap's slack (it
	// may reach twice what is live). Measured: 246 MiB (BENCHMARKS.md).
	if rss > 400e6 {
		t.Errorf("peak RSS %d MiB for %d MiB of state; want under 400 MB", rss>>20, state>>20)
	}
	// Linear work: re-encoding or re-validating the list every step took
	// 30 s of CPU; now about 2 s plus the machine's load.
	if cpu > 15*time.Second {
		t.Errorf("CPU %v for %d steps of 1 MiB; want it linear in the state (under 15 s)", cpu, steps)
	}
}
