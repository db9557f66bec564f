package main

import (
	"os/exec"
	"testing"
)

// BenchmarkValidateProcess times `lgx validate` of one example file as a
// whole process (start-up included), the way CI and editors call it.
// Target: under 20 ms median.
func BenchmarkValidateProcess(b *testing.B) {
	bin, err := buildLGX()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		out, err := exec.Command(bin, "validate", "../../workflows/research.yaml").CombinedOutput()
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}
