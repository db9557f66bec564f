package runner

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/store"
)

// frozenRenewals is a store whose lease renewals hang while frozen, as
// every renewal of a process stopped with SIGSTOP (or starved) does; the
// rest of the store answers.
type frozenRenewals struct {
	store.Store
	frozen atomic.Bool
	thaw   chan struct{}
}

func (s *frozenRenewals) RenewLease(ctx context.Context, runID, owner string, expires time.Time) error {
	if s.frozen.Load() {
		<-s.thaw
	}
	return s.Store.RenewLease(ctx, runID, owner, expires)
}

// TestStoppedOwnerRecordsAndSendsNothing: a process that could not renew
// its lease for longer than its TTL (stopped, then continued) while
// another process took the run over must not record the invocation it was
// running when it stopped, nor checkpoint it, nor start the next step's
// side effects, nor finish the run (SPEC §9.3: one owner per run). Before
// heldLease.confirm, it did all four: the record overwrote the new
// owner's and the next node's request went out a second time.
func TestStoppedOwnerRecordsAndSendsNothing(t *testing.T) {
	// a alone in its step is recorded with its checkpoint; a for_each's
	// items go through the recorder.
	shapes := map[string]string{
		"one invocation": `{type: probe, with: {value: a, sleep_ms: 1000, group: stopped-a}, output: {r: "${{ result }}"}}`,
		"for_each":       `{type: probe, for_each: [1, 2, 3], with: {value: "${{ item }}", sleep_ms: 1000, group: stopped-a}, output: {r: "${{ result }}"}}`,
	}
	for shape, a := range shapes {
		for _, name := range leaseStores {
			t.Run(shape+"/"+name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					testStoppedOwner(t, name, a)
				})
			})
		}
	}
}

func testStoppedOwner(t *testing.T, storeName, nodeA string) {
	g := compileYAML(t, `lgx: 1
name: stopped
state:
  r: {type: list, reducer: append, default: []}
nodes:
  a: `+nodeA+`
  b: {type: probe, with: {value: b, group: stopped-b}, output: {r: "${{ result }}"}}
edges:
  - {from: START, to: a}
  - {from: a, to: b}
`)
	resetGroup("stopped-a")
	sends := resetGroup("stopped-b")
	st := &frozenRenewals{Store: leaseStore(t, storeName), thaw: make(chan struct{})}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // the store's own goroutines end with it
	ctx := context.Background()

	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(ctx, g, Options{Store: st, Environ: []string{}, RunID: "R", leaseTTL: testTTL})
		done <- outcome{res, err}
	}()
	// The process stops while a waits for its answer: no renewal passes.
	synctest.Wait()
	st.frozen.Store(true)
	time.Sleep(testTTL + testTTL/2) // the lease has expired

	// Another process takes the run over, as one on another host sharing
	// the store does once the lease expired. (On this host the owner's
	// live pid keeps it: the test stands in for the other host by
	// replacing the lease.)
	rec, err := st.Store.GetRun(ctx, "R")
	if err != nil || rec.Lease == nil {
		t.Fatalf("the run's lease: %+v, %v", rec, err)
	}
	if err := st.Store.ReleaseLease(ctx, "R", rec.Lease.Owner); err != nil {
		t.Fatal(err)
	}
	other := store.Lease{Owner: "other", PID: 1, Host: "another-host.invalid", Expires: time.Now().Add(time.Hour)}
	if err := st.Store.AcquireLease(ctx, "R", other); err != nil {
		t.Fatalf("the other process could not take the expired lease: %v", err)
	}
	// a's answer arrives; the stopped process would go on from here.
	time.Sleep(time.Second)
	synctest.Wait()
	if invs, _ := st.Store.Invocations(ctx, "R"); len(invs) > 0 {
		t.Errorf("the deposed process recorded %d invocation(s) of a run it no longer owns", len(invs))
	}
	close(st.thaw) // renewals go through now, and find the other owner

	out := <-done
	if !errors.Is(out.err, store.ErrLeaseLost) {
		t.Fatalf("Run returned %v; want the lease lost", out.err)
	}
	sends.mu.Lock()
	calls := sends.calls
	sends.mu.Unlock()
	if calls != 0 {
		t.Errorf("node b ran %d time(s) in the deposed process; want 0 (its effects are the new owner's)", calls)
	}
	if invs, _ := st.Store.Invocations(ctx, "R"); len(invs) > 0 {
		t.Errorf("the deposed process recorded %v", invs[0].Path)
	}
	if cps, _ := st.Store.Checkpoints(ctx, "R"); len(cps) > 1 {
		t.Errorf("the deposed process wrote %d checkpoints; want only the first (step 0)", len(cps))
	}
	rec, err = st.Store.GetRun(ctx, "R")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Lease == nil || rec.Lease.Owner != "other" || rec.Status != store.StatusRunning {
		t.Errorf("run after the deposed process stopped: status %s, lease %+v; want running, the other owner's", rec.Status, rec.Lease)
	}
}
