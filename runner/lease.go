package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lgx-run/lgx/store"
)

// releaseTimeout bounds the final ReleaseLease, which runs after the run's
// context may be cancelled (Ctrl-C): a store that hangs must not keep lgx
// from exiting. An unreleased lease only delays the next resume until the
// pid is seen dead, or the lease expires.
const releaseTimeout = 10 * time.Second

// heldLease is this process's claim to execute one run (SPEC §9.3): taken
// by acquireLease, renewed in the background every leaseTTL/3 so it never
// expires while the process lives, and given back by release.
type heldLease struct {
	st    store.Store
	runID string
	owner string
	ctx   context.Context // values only: the run's context, without its cancellation

	ttl time.Duration
	// expires is the expiry (Unix nanoseconds) the last renewal wrote:
	// until then no other process can take the run.
	expires atomic.Int64
	// confirmMu makes the workers that confirm a stale lease at once
	// renew it once, not each.
	confirmMu sync.Mutex

	stop     chan struct{} // closed by release
	done     chan struct{} // closed when the renewal goroutine has returned
	lostC    chan struct{} // closed once another owner took the run
	isLost   atomic.Bool
	lostErr  atomic.Value // error: why, once lost
	released sync.Once
	relErr   error
}

// acquireLease takes the lease of run runID for this process and starts
// renewing it. It fails with a *store.LeaseError naming the holder when
// another live process executes the run.
func acquireLease(ctx context.Context, st store.Store, runID string) (*heldLease, error) {
	return acquireLeaseTTL(ctx, st, runID, store.LeaseTTL)
}

// acquireLeaseTTL is acquireLease with a lease that lives ttl unrenewed
// (tests shorten it).
func acquireLeaseTTL(ctx context.Context, st store.Store, runID string, ttl time.Duration) (*heldLease, error) {
	h, l := newLease(ctx, st, runID, ttl)
	if err := st.AcquireLease(ctx, runID, l); err != nil {
		return nil, err
	}
	go h.renew()
	return h, nil
}

// newLease returns this process's lease of run runID, living ttl, neither
// in the store nor renewed yet: a new run records it with the run itself
// (journal.create), in one write instead of two.
func newLease(ctx context.Context, st store.Store, runID string, ttl time.Duration) (*heldLease, store.Lease) {
	h := &heldLease{
		st:    st,
		runID: runID,
		ttl:   ttl,
		owner: ulid.Make().String(),
		ctx:   context.WithoutCancel(ctx),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		lostC: make(chan struct{}),
	}
	l := store.Lease{Owner: h.owner, PID: os.Getpid(), Host: store.Hostname(), Expires: time.Now().Add(ttl)}
	h.expires.Store(l.Expires.UnixNano())
	return h, l
}

// renew extends the lease every ttl/3 until release. Renewal that fails
// for another reason than a lost lease (a busy store) is retried at the
// next tick; once the last lease it did extend has expired, another
// process may take the run at any moment, so the lease counts as lost.
func (h *heldLease) renew() {
	defer close(h.done)
	t := time.NewTicker(h.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		if err := h.extend(); err != nil {
			return
		}
	}
}

// extend renews the lease for another ttl. It returns the reason once the
// lease is lost: another owner holds it, or renewing failed (a busy store)
// past the last expiry written. The renewal goroutine and a confirm may
// extend at once; expires keeps the later expiry.
func (h *heldLease) extend() error {
	if h.lost() {
		return h.lostReason()
	}
	next := time.Now().Add(h.ttl)
	err := h.st.RenewLease(h.ctx, h.runID, h.owner, next)
	switch {
	case err == nil:
		for n := next.UnixNano(); ; {
			cur := h.expires.Load()
			if cur >= n || h.expires.CompareAndSwap(cur, n) {
				return nil
			}
		}
	case errors.Is(err, store.ErrLeaseLost):
		h.markLost(err)
	case !time.Now().Before(time.Unix(0, h.expires.Load())):
		h.markLost(fmt.Errorf("lease of run %s expired: renewing failed: %w", h.runID, err))
	default:
		return nil // still ours until it expires; the next renewal retries
	}
	return h.lostReason()
}

// confirm returns nil when this process still holds the lease, so that
// what it does next (send a request, record an outcome) cannot race
// another owner; otherwise the reason it lost it. A lease renewed on time
// has more than a third of its life left, and nobody can take it before
// it expires: confirm then costs a clock read. Less means renewals were
// missed (the process was stopped, or starved, for longer than a third of
// the TTL): confirm renews at once, which fails when another process took
// the run meanwhile. Renewal alone would let a process that wakes up
// after its lease was taken finish its request, record it over the new
// owner's, and start the next step before its next tick noticed.
func (h *heldLease) confirm() error {
	if h == nil { // a run without a store
		return nil
	}
	if h.lost() {
		return h.lostReason()
	}
	if time.Until(time.Unix(0, h.expires.Load())) > h.ttl/3 {
		return nil
	}
	h.confirmMu.Lock()
	defer h.confirmMu.Unlock()
	if time.Until(time.Unix(0, h.expires.Load())) > h.ttl/3 { // renewed while this one waited
		return nil
	}
	return h.extend()
}

func (h *heldLease) markLost(err error) {
	h.lostErr.Store(err)
	if h.isLost.CompareAndSwap(false, true) {
		close(h.lostC)
	}
}

// lost reports whether another process took the run: this one must stop
// executing it.
func (h *heldLease) lost() bool { return h.isLost.Load() }

// lostCh is closed when the lease is lost, for a runner that waits on it.
func (h *heldLease) lostCh() <-chan struct{} { return h.lostC }

// lostReason is why the lease was lost, nil while it is held.
func (h *heldLease) lostReason() error {
	err, _ := h.lostErr.Load().(error)
	return err
}

// release stops the renewal, waits for it, and gives the lease back (a
// no-op in the store when another owner took it). It is safe to call more
// than once; later calls return the first result.
func (h *heldLease) release() error { return h.end(true) }

// drop stops the renewal and waits for it without writing: the run's
// FinishRun cleared the lease with the run's outcome (every store does),
// so a release would be one more write, for nothing, before Run returns.
func (h *heldLease) drop() { _ = h.end(false) }

func (h *heldLease) end(write bool) error {
	h.released.Do(func() {
		close(h.stop)
		<-h.done
		if !write {
			return
		}
		ctx, cancel := context.WithTimeout(h.ctx, releaseTimeout)
		defer cancel()
		if err := h.st.ReleaseLease(ctx, h.runID, h.owner); err != nil {
			h.relErr = fmt.Errorf("release lease of run %s: %w", h.runID, err)
		}
	})
	return h.relErr
}

// heldLease returns the lease the run executes under: its own, or a
// subgraph child's top-level run's; nil without a store.
func (r *run) heldLease() *heldLease {
	if r.lease != nil {
		return r.lease
	}
	if r.opts.parent != nil {
		return r.opts.parent.lease
	}
	return nil
}
