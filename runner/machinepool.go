package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// MachinePools gives runs the pools of the user's config (SPEC §9.9),
// whose slots and rate tokens every lgx process of the user takes from one
// store: a pool of concurrency 3 puts at most 3 requests in flight across
// all of them. One value serves every run of a process; the process is
// one slot owner, so any slot it holds of a pool can be released for any
// of its invocations.
//
// Slots are leases (store.SlotTTL): renewed every TTL/3 while held, so a
// process killed with kill -9 holds its slots at most until they expire,
// and on its own host only until its pid is seen gone.
type MachinePools struct {
	cfg    *spec.UserConfig
	leaser store.SlotLeaser
	holder store.Lease // Owner, PID, Host; Expires is set per request
	ttl    time.Duration

	mu      sync.Mutex
	pools   map[string]*machinePool
	pending []slotRef // releases that failed, retried at each renewal

	stop, done chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// slotRef names one slot of a pool.
type slotRef struct {
	pool string
	slot int
}

// machinePollMax bounds the wait between two attempts to take a slot of a
// busy pool; attempts start at machinePollMin apart and back off to it.
const (
	machinePollMin = 2 * time.Millisecond
	machinePollMax = 50 * time.Millisecond
)

// NewMachinePools takes the machine-wide pools of cfg from leaser (the
// config's store). Close it when the process stops running workflows.
func NewMachinePools(cfg *spec.UserConfig, leaser store.SlotLeaser) *MachinePools {
	return newMachinePools(cfg, leaser, store.SlotTTL)
}

func newMachinePools(cfg *spec.UserConfig, leaser store.SlotLeaser, ttl time.Duration) *MachinePools {
	m := &MachinePools{
		cfg:    cfg,
		leaser: leaser,
		holder: store.Lease{Owner: ulid.Make().String(), PID: os.Getpid(), Host: store.Hostname()},
		ttl:    ttl,
		pools:  map[string]*machinePool{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go m.renew()
	return m
}

// Config is the user config whose pools m serves.
func (m *MachinePools) Config() *spec.UserConfig { return m.cfg }

// renew extends the leases of every slot the process holds every ttl/3,
// and retries the releases that failed. A renewal that fails (a busy
// store) is retried at the next tick; the leases live ttl, so two more
// tries come before any expires.
func (m *MachinePools) renew() {
	defer close(m.done)
	t := time.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.ttl/3)
		m.retryReleases(ctx)
		_, _ = m.leaser.RenewSlots(ctx, m.holder.Owner, time.Now().Add(m.ttl))
		cancel()
	}
}

func (m *MachinePools) retryReleases(ctx context.Context) {
	m.mu.Lock()
	refs := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, r := range refs {
		if err := m.leaser.ReleaseSlot(ctx, r.pool, r.slot, m.holder.Owner); err != nil {
			m.mu.Lock()
			m.pending = append(m.pending, r)
			m.mu.Unlock()
		}
	}
}

// Close stops the renewal and releases every slot the process still
// holds. It is safe to call more than once.
func (m *MachinePools) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		if err := m.leaser.ReleaseSlots(ctx, m.holder.Owner); err != nil {
			m.closeErr = fmt.Errorf("release machine-wide pool slots: %w", err)
		}
	})
	return m.closeErr
}

// apply adds the config's pools and providers to a workflow loaded by the
// runner itself (a resumed run's recorded text).
func (m *MachinePools) apply(w *spec.Workflow) {
	if m != nil {
		m.cfg.Apply(w)
	}
}

// pool returns the machine-wide state of config pool p.
func (m *MachinePools) pool(p *spec.Pool) *machinePool {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp := m.pools[p.Name]
	if mp == nil {
		mp = &machinePool{m: m, name: p.Name, conc: p.Concurrency, rate: p.Rate.PerSecond(), burst: p.Burst, wake: make(chan struct{})}
		m.pools[p.Name] = mp
	}
	return mp
}

// machinePool is one machine-wide pool as this process takes it.
type machinePool struct {
	m     *MachinePools
	name  string
	conc  int
	rate  float64
	burst int

	mu   sync.Mutex
	held []int         // slots this process holds
	wake chan struct{} // closed (and replaced) when this process releases a slot
}

// machineSlots is a machine-wide pool as one run takes it.
type machineSlots struct {
	mp    *machinePool
	runID string
}

// acquire takes a slot and a rate token of the pool from the store,
// waiting (polling with backoff, or until the next token is due) while
// there is none; onWait is called once before the first wait. Waiting is
// ended only by ctx. On error nothing is held.
func (s *machineSlots) acquire(ctx context.Context, onWait func()) error {
	if s == nil {
		return nil
	}
	mp := s.mp
	poll := machinePollMin
	for waited := false; ; waited = true {
		mp.mu.Lock()
		wake := mp.wake
		mp.mu.Unlock()
		now := time.Now()
		h := mp.m.holder
		h.Expires = now.Add(mp.m.ttl)
		g, err := mp.m.leaser.AcquireSlot(ctx, store.SlotRequest{Pool: mp.name, Concurrency: mp.conc, Rate: mp.rate, Burst: mp.burst,
			Holder: h, RunID: s.runID, Now: now})
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("machine-wide pool %s: %w", mp.name, err)
		}
		if g.OK {
			if g.Slot >= 0 {
				mp.mu.Lock()
				mp.held = append(mp.held, g.Slot)
				mp.mu.Unlock()
			}
			return nil
		}
		if !waited && onWait != nil {
			onWait()
		}
		delay := g.Wait // the next rate token is due: nothing comes sooner
		if g.Busy || delay <= 0 {
			// A holder may release any time: poll, backing off, with
			// jitter so that waiting processes do not ask in lockstep.
			delay = min(poll, max(g.Wait, machinePollMin))
			delay = delay/2 + rand.N(delay/2+1)
			poll = min(2*poll, machinePollMax)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// release gives back one slot the process holds of the pool (slots are
// interchangeable within a process) and wakes this process's waiters. A
// release that fails is retried at the next renewal; until then the slot
// stays held, which errs on the side of the cap.
func (s *machineSlots) release() {
	if s == nil {
		return
	}
	mp := s.mp
	mp.mu.Lock()
	n := len(mp.held)
	if n == 0 {
		mp.mu.Unlock()
		return // a rate-only pool holds no slot
	}
	slot := mp.held[n-1]
	mp.held = mp.held[:n-1]
	mp.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	err := mp.m.leaser.ReleaseSlot(ctx, mp.name, slot, mp.m.holder.Owner)
	cancel()
	if err != nil {
		mp.m.mu.Lock()
		mp.m.pending = append(mp.m.pending, slotRef{mp.name, slot})
		mp.m.mu.Unlock()
	}
	mp.mu.Lock()
	close(mp.wake)
	mp.wake = make(chan struct{})
	mp.mu.Unlock()
}

// errNoMachinePools is why a run whose workflow names a machine-wide pool
// cannot start without a MachinePools to take it from.
var errNoMachinePools = errors.New("this lgx runs without the machine-wide pools' store")

// attachMachine makes the run's machine-wide pools (the config's, with
// spec.Pool.Config set) take their slots and rate tokens from m. Their
// local semaphore stays, bounding how many of this process's invocations
// ask the store at once; their local token bucket goes, the store's
// replaces it. Taken with a key, a machine-wide pool's caps are always the
// total over its keys: the machine-wide cap holds however it is taken.
func (l *limits) attachMachine(m *MachinePools, pools []*spec.Pool, runID string) error {
	for _, p := range pools {
		if p.Config == "" {
			continue
		}
		if m == nil {
			return fmt.Errorf("pool %s of %s: %w", p.Name, p.Config, errNoMachinePools)
		}
		pl := l.pools[p.Name]
		if pl == nil {
			continue
		}
		pl.machine = &machineSlots{mp: m.pool(p), runID: runID}
		pl.limiter = nil
	}
	return nil
}
