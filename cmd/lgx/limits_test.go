package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimitsRejectFast: the real binary (built without the race detector)
// rejects an alias bomb, deep nesting and oversized files with exit 2 in
// under a second (SPEC §8).
func TestLimitsRejectFast(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	var bomb strings.Builder
	bomb.WriteString("lgx: 1\nname: b\na0: &a0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [%s]\n", i, i, strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 8)+fmt.Sprintf("*a%d", i-1))
	}
	var blockSeq strings.Builder
	for i := 0; i < 1500; i++ {
		blockSeq.WriteString(strings.Repeat(" ", i) + "- \n")
	}
	var blockMap strings.Builder
	for i := 0; i < 900; i++ {
		blockMap.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	cases := map[string]string{
		"alias bomb":     bomb.String(),
		"flow nesting":   "lgx: 1\nname: n\nnodes: " + strings.Repeat("[", 50000) + strings.Repeat("]", 50000) + "\n",
		"block sequence": blockSeq.String(),
		"block mapping":  blockMap.String(),
		"too large":      "lgx: 1\n#" + strings.Repeat("x", 3<<20) + "\n",
	}
	dir := t.TempDir()
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			out, err := exec.Command(bin, "run", path).CombinedOutput()
			elapsed := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
				t.Fatalf("want exit 2, got %v:\n%s", err, out)
			}
			if elapsed > time.Second {
				t.Errorf("took %v, want under a second", elapsed)
			}
			if name == "too large" && !strings.Contains(string(out), "file is larger than 2 MiB") {
				t.Errorf("the limit should read in MiB:\n%.300s", out)
			}
			if strings.Contains(string(out), "goroutine ") || strings.Contains(string(out), "panic") {
				t.Errorf("output looks like a crash:\n%s", out)
			}
		})
	}
}
