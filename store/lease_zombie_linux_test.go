package store

import (
	osexec "os/exec"
	"testing"
	"time"
)

// TestPidAliveZombie: a process that has exited but was not reaped yet (a
// zombie) holds no lease, whoever its parent is.
func TestPidAliveZombie(t *testing.T) {
	cmd := osexec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Wait() }()
	if !pidAlive(1) {
		t.Error("pid 1 reported dead")
	}
	// Not waited for, the process turns into a zombie once it exits.
	deadline := time.Now().Add(10 * time.Second)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("exited, unreaped process %d still counts as alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDying(t *testing.T) {
	tests := []struct {
		name, status string
		want         bool
	}{
		{"running", "Name:\tlgx\nState:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n", false},
		{"zombie", "Name:\tlgx\nState:\tZ (zombie)\n", true},
		{"dead", "Name:\tlgx\nState:\tX (dead)\n", true},
		{"SIGKILL pending on the thread", "State:\tR (running)\nSigPnd:\t0000000000000100\nShdPnd:\t0000000000000000\n", true},
		{"SIGKILL pending for the process", "State:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000004100\n", true},
		{"other signals pending", "State:\tS (sleeping)\nSigPnd:\t0000000000000002\nShdPnd:\t0000000000004000\n", false},
	}
	for _, tt := range tests {
		if got := dying([]byte(tt.status)); got != tt.want {
			t.Errorf("%s: dying = %v, want %v", tt.name, got, tt.want)
		}
	}
}
