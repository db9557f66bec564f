package runner

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// leaseWrites counts the lease writes a run makes besides creating and
// finishing it, and can fail FinishRun.
type leaseWrites struct {
	*store.Memory
	acquires, releases atomic.Int32
	failFinish         bool
}

func (s *leaseWrites) AcquireLease(ctx context.Context, id string, l store.Lease) error {
	s.acquires.Add(1)
	return s.Memory.AcquireLease(ctx, id, l)
}

func (s *leaseWrites) ReleaseLease(ctx context.Context, id, owner string) error {
	s.releases.Add(1)
	return s.Memory.ReleaseLease(ctx, id, owner)
}

func (s *leaseWrites) FinishRun(ctx context.Context, id string, status store.Status, msg string, at time.Time) error {
	if s.failFinish {
		return errors.New("disk full")
	}
	return s.Memory.FinishRun(ctx, id, status, msg, at)
}

// TestLeaseWritesOfARun: a new run is created with its lease in one write
// (no AcquireLease), holds it while it runs, and gives it back with its
// outcome (FinishRun clears it; no ReleaseLease), two writes fewer on a
// run's path before its first node and after its last. When FinishRun
// fails, the lease is still released on its own.
func TestLeaseWritesOfARun(t *testing.T) {
	g := compileYAML(t, `lgx: 1
name: t
state:
  n: {type: integer, default: 0}
nodes:
  a: {type: probe, with: {value: 1, sleep_ms: 300}, output: {n: 1}}
edges:
  - {from: START, to: a}
`)
	st := &leaseWrites{Memory: store.NewMemory()}
	// The lease as the store shows it while the node sleeps.
	var held *store.Lease
	ran, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-ran:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if runs, _ := st.ListRuns(context.Background(), 1); len(runs) == 1 && runs[0].Status == store.StatusRunning {
				held = runs[0].Lease
				return
			}
		}
	}()
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}})
	close(ran)
	<-polled
	if err != nil {
		t.Fatal(err)
	}
	if held == nil || held.Owner == "" {
		t.Errorf("lease while the node ran = %+v, want this process's", held)
	}
	got, err := st.GetRun(context.Background(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lease != nil || got.Status != store.StatusCompleted {
		t.Errorf("after the run: status %s, lease %+v; want completed, none", got.Status, got.Lease)
	}
	if a, r := st.acquires.Load(), st.releases.Load(); a != 0 || r != 0 {
		t.Errorf("AcquireLease called %d times, ReleaseLease %d; want 0 and 0 (the run's create and finish carry it)", a, r)
	}

	g = compileYAML(t, `lgx: 1
name: t
nodes:
  a: {type: probe, with: {value: 1}}
edges:
  - {from: START, to: a}
`)
	st = &leaseWrites{Memory: store.NewMemory(), failFinish: true}
	if _, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}}); err == nil {
		t.Fatal("Run with a failing FinishRun: no error")
	}
	if r := st.releases.Load(); r != 1 {
		t.Errorf("FinishRun failed: ReleaseLease called %d times, want 1", r)
	}
}
