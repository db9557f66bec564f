package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// leaseChildEnv makes the test binary act as a racer of
// TestSQLiteLeaseRaceBetweenProcesses on the store it names.
const leaseChildEnv = "LGX_STORE_LEASE_CHILD"

// leaseChild opens the store, waits for a line on stdin, tries to take the
// lease of run "race" as itself, prints "won" or "lost OWNER", then stays
// alive (its pid must stay alive for its lease to) until stdin closes.
func leaseChild(path string) int {
	s, err := store.OpenSQLite(path)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer s.Close()
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		fmt.Println("error", err)
		return 1
	}
	me := fmt.Sprint("proc-", os.Getpid())
	err = s.AcquireLease(context.Background(), "race", store.Lease{Owner: me, PID: os.Getpid(), Host: store.Hostname(),
		Expires: time.Now().Add(time.Minute)})
	var le *store.LeaseError
	switch {
	case err == nil:
		fmt.Println("won", me)
	case errors.As(err, &le):
		fmt.Println("lost", le.Holder.Owner)
	default:
		fmt.Println("error", err)
	}
	_, _ = io.Copy(io.Discard, in)
	return 0
}

// TestSQLiteLeaseRaceBetweenProcesses starts processes that race for one
// run's lease on one store file, as two `lgx resume RUN` at once do:
// exactly one wins and every other one names it.
func TestSQLiteLeaseRaceBetweenProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(context.Background(), &store.Run{ID: "race", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	const n = 4
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type racer struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	racers := make([]racer, n)
	for i := range racers {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), leaseChildEnv+"="+path)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		racers[i] = racer{cmd, stdin, bufio.NewScanner(stdout)}
	}
	defer func() {
		for _, r := range racers {
			r.stdin.Close()
			_ = r.cmd.Wait()
		}
	}()
	for _, r := range racers {
		if _, err := io.WriteString(r.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var winners, losers []string
	for i, r := range racers {
		if !r.out.Scan() {
			t.Fatalf("racer %d printed nothing: %v", i, r.out.Err())
		}
		f := strings.Fields(r.out.Text())
		switch {
		case len(f) == 2 && f[0] == "won":
			winners = append(winners, f[1])
		case len(f) == 2 && f[0] == "lost":
			losers = append(losers, f[1])
		default:
			t.Fatalf("racer %d: %s", i, r.out.Text())
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d processes acquired the lease (%v), want exactly 1", len(winners), winners)
	}
	for _, l := range losers {
		if l != winners[0] {
			t.Errorf("a loser was told the holder is %s, but %s won", l, winners[0])
		}
	}
}
