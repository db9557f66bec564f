package runner

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/store"
)

// leaseStores name the stores the lease tests run against.
var leaseStores = []string{"memory", "sqlite"}

// leaseStore opens the store called name. The lease tests call it inside
// their synctest bubble, so that the store's goroutines (database/sql's
// connection opener) belong to the bubble and its fake clock.
func leaseStore(t *testing.T, name string) store.Store {
	if name == "memory" {
		return store.NewMemory()
	}
	sq, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	return sq
}

// waitFor polls cond every few milliseconds for up to 5 s (of the fake
// clock when called in a synctest bubble).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testTTL is the lease TTL of the tests. They run in synctest bubbles, so
// their sleeps and the renewal ticker use a fake clock: the timing is exact
// and takes no wall time.
const testTTL = 300 * time.Millisecond

// TestLeaseRenewedUntilReleased: a held lease outlives several TTLs (it is
// renewed), keeps other owners out, and release clears it and stops the
// renewal goroutine.
func TestLeaseRenewedUntilReleased(t *testing.T) {
	for _, name := range leaseStores {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := leaseStore(t, name)
				defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
				ctx := context.Background()
				if err := st.CreateRun(ctx, &store.Run{ID: "r", Status: store.StatusRunning}); err != nil {
					t.Fatal(err)
				}
				h, err := acquireLeaseTTL(ctx, st, "r", testTTL)
				if err != nil {
					t.Fatalf("acquireLease: %v", err)
				}
				time.Sleep(3 * testTTL)
				r, err := st.GetRun(ctx, "r")
				if err != nil {
					t.Fatal(err)
				}
				if r.Lease == nil || r.Lease.Owner != h.owner || !r.Lease.Expires.After(time.Now()) || r.Status != store.StatusRunning {
					t.Fatalf("after 3 TTLs: lease %+v, status %s; want ours, unexpired, running", r.Lease, r.Status)
				}
				if h.lost() {
					t.Fatalf("lease reported lost: %v", h.lostReason())
				}
				_, err = acquireLease(ctx, st, "r")
				var le *store.LeaseError
				if !errors.As(err, &le) || le.Holder.Owner != h.owner {
					t.Fatalf("second acquireLease = %v, want a *LeaseError naming %s", err, h.owner)
				}
				if err := h.release(); err != nil {
					t.Fatalf("release: %v", err)
				}
				if err := h.release(); err != nil {
					t.Fatalf("second release: %v", err)
				}
				if r, _ := st.GetRun(ctx, "r"); r.Lease != nil || r.Status != store.StatusStale {
					t.Errorf("after release: lease %+v, status %s; want none, stale", r.Lease, r.Status)
				}
			})
		})
	}
}

// TestLeaseLostToAnotherOwner: once another owner holds the run, the next
// renewal reports the lease lost, and release leaves the new owner's lease
// alone.
func TestLeaseLostToAnotherOwner(t *testing.T) {
	for _, name := range leaseStores {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := leaseStore(t, name)
				defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
				ctx := context.Background()
				if err := st.CreateRun(ctx, &store.Run{ID: "r", Status: store.StatusRunning}); err != nil {
					t.Fatal(err)
				}
				h, err := acquireLeaseTTL(ctx, st, "r", testTTL)
				if err != nil {
					t.Fatal(err)
				}
				defer h.release()
				// Another process takes over (as if it judged this one dead).
				if err := st.ReleaseLease(ctx, "r", h.owner); err != nil {
					t.Fatal(err)
				}
				other := store.Lease{Owner: "other", PID: 1, Host: "another-host.invalid", Expires: time.Now().Add(time.Hour)}
				if err := st.AcquireLease(ctx, "r", other); err != nil {
					t.Fatal(err)
				}
				select {
				case <-h.lostCh():
				case <-time.After(5 * time.Second):
					t.Fatal("lease not reported lost")
				}
				if !h.lost() || !errors.Is(h.lostReason(), store.ErrLeaseLost) {
					t.Errorf("lost() = %v, reason %v; want true, ErrLeaseLost", h.lost(), h.lostReason())
				}
				if err := h.release(); err != nil {
					t.Fatalf("release: %v", err)
				}
				if r, _ := st.GetRun(ctx, "r"); r.Lease == nil || r.Lease.Owner != "other" {
					t.Errorf("release removed the new owner's lease: %+v", r.Lease)
				}
			})
		})
	}
}

// failingRenewals is a store whose renewals fail as a busy store's would.
type failingRenewals struct{ store.Store }

func (failingRenewals) RenewLease(context.Context, string, string, time.Time) error {
	return errors.New("database is locked")
}

// TestLeaseLostWhenRenewalsFailPastExpiry: renewals that keep failing are
// retried while the lease is valid; once it has expired, another process
// may take the run, so the lease counts as lost.
func TestLeaseLostWhenRenewalsFailPastExpiry(t *testing.T) {
	synctest.Test(t, testLeaseLostWhenRenewalsFailPastExpiry)
}

func testLeaseLostWhenRenewalsFailPastExpiry(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	st := failingRenewals{store.NewMemory()}
	if err := st.CreateRun(ctx, &store.Run{ID: "r", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h, err := acquireLeaseTTL(ctx, st, "r", testTTL)
	if err != nil {
		t.Fatal(err)
	}
	defer h.release()
	waitFor(t, "the lease to be lost", h.lost)
	// Renewals at TTL/3 and 2TTL/3 fail while the lease is valid; the one
	// at TTL finds it expired. waitFor polls every 5ms.
	if took := time.Since(start); took < testTTL || took > testTTL+5*time.Millisecond {
		t.Errorf("lost after %v, want when the lease expired (%v)", took, testTTL)
	}
	if reason := h.lostReason(); reason == nil || errors.Is(reason, store.ErrLeaseLost) {
		t.Errorf("reason = %v, want the renewal failure", reason)
	}
}

// cancellable is a store whose lease calls honour their context, as a
// server-backed store's would.
type cancellable struct{ store.Store }

func (c cancellable) RenewLease(ctx context.Context, runID, owner string, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Store.RenewLease(ctx, runID, owner, expires)
}

func (c cancellable) ReleaseLease(ctx context.Context, runID, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Store.ReleaseLease(ctx, runID, owner)
}

// TestLeaseReleaseAfterCancel: renewal and release work after the run's
// context was cancelled (Ctrl-C): the lease is given back, so a resume can
// start at once.
func TestLeaseReleaseAfterCancel(t *testing.T) {
	synctest.Test(t, testLeaseReleaseAfterCancel)
}

func testLeaseReleaseAfterCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	st := cancellable{store.NewMemory()}
	ctx, cancel := context.WithCancel(context.Background())
	if err := st.CreateRun(ctx, &store.Run{ID: "r", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	h, err := acquireLeaseTTL(ctx, st, "r", testTTL/2)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(testTTL) // renewals after the cancellation
	if h.lost() {
		t.Fatalf("lease lost after cancellation: %v", h.lostReason())
	}
	if err := h.release(); err != nil {
		t.Fatalf("release after cancel: %v", err)
	}
	if r, _ := st.GetRun(context.Background(), "r"); r.Lease != nil {
		t.Errorf("lease still held after release: %+v", r.Lease)
	}
}
