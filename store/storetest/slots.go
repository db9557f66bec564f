package storetest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// SlotStore is a store that leases machine-wide pools' slots.
type SlotStore interface {
	store.SlotLeaser
	Close() error
}

// RunSlots runs the conformance suite of store.SlotLeaser (machine-wide
// pools' slots and rate tokens). open must return a new, empty store for
// each call; RunSlots closes it when the subtest ends.
func RunSlots(t *testing.T, open func(t *testing.T) SlotStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.SlotLeaser)
	}{
		{"Capacity", testSlotCapacity},
		{"Expiry", testSlotExpiry},
		{"DeadOwner", testSlotDeadOwner},
		{"Renew", testSlotRenew},
		{"ReleaseOwnOnly", testSlotReleaseOwnOnly},
		{"Rate", testSlotRate},
		{"TokenOnlyWithSlot", testSlotTokenOnlyWithSlot},
		{"PoolsIsolated", testSlotPoolsIsolated},
		{"Rejects", testSlotRejects},
		{"Race", testSlotRace},
	}
	for _, tc := range tests {
		runCase(t, tc.name, open, func(t *testing.T, s SlotStore) { tc.fn(t, s) })
	}
}

// holder is a live holder on this host (this process) whose lease expires
// ttl after now.
func holder(owner string, now time.Time, ttl time.Duration) store.Lease {
	return store.Lease{Owner: owner, PID: os.Getpid(), Host: store.Hostname(), Expires: now.Add(ttl)}
}

func slotReq(pool string, conc int, h store.Lease, now time.Time) store.SlotRequest {
	return store.SlotRequest{Pool: pool, Concurrency: conc, Holder: h, RunID: "run-" + h.Owner, Now: now}
}

func mustAcquire(t *testing.T, s store.SlotLeaser, req store.SlotRequest) store.SlotGrant {
	t.Helper()
	g, err := s.AcquireSlot(context.Background(), req)
	if err != nil {
		t.Fatalf("AcquireSlot(%s by %s): %v", req.Pool, req.Holder.Owner, err)
	}
	return g
}

func testSlotCapacity(t *testing.T, s store.SlotLeaser) {
	ctx := context.Background()
	now := time.Now()
	for i, o := range []string{"a", "b"} {
		if g := mustAcquire(t, s, slotReq("llm", 2, holder(o, now, time.Minute), now)); !g.OK || g.Slot != i {
			t.Fatalf("owner %s: grant %+v, want slot %d", o, g, i)
		}
	}
	g := mustAcquire(t, s, slotReq("llm", 2, holder("c", now, time.Minute), now))
	if g.OK || !g.Busy {
		t.Fatalf("third owner of a pool of 2 got %+v, want busy", g)
	}
	if g.Wait <= 50*time.Second || g.Wait > time.Minute {
		t.Errorf("Wait = %v, want the soonest expiry (about 1m)", g.Wait)
	}
	slots, err := s.Slots(ctx, "llm")
	if err != nil || len(slots) != 2 || slots[0].Lease.Owner != "a" || slots[1].RunID != "run-b" || slots[1].Lease.PID != os.Getpid() {
		t.Fatalf("Slots = %+v, %v", slots, err)
	}
	if err := s.ReleaseSlot(ctx, "llm", 0, "a"); err != nil {
		t.Fatal(err)
	}
	if g := mustAcquire(t, s, slotReq("llm", 2, holder("c", now, time.Minute), now)); !g.OK || g.Slot != 0 {
		t.Fatalf("after a release: %+v, want slot 0", g)
	}
}

func testSlotExpiry(t *testing.T, s store.SlotLeaser) {
	now := time.Now()
	other := store.Lease{Owner: "far", PID: 1, Host: "another-host.invalid", Expires: now.Add(time.Second)}
	if g := mustAcquire(t, s, slotReq("p", 1, other, now)); !g.OK {
		t.Fatalf("first grant %+v", g)
	}
	// Another host's live lease holds until it expires, whatever its pid.
	if g := mustAcquire(t, s, slotReq("p", 1, holder("me", now, time.Minute), now.Add(999*time.Millisecond))); g.OK {
		t.Fatalf("took a live lease of another host: %+v", g)
	}
	if g := mustAcquire(t, s, slotReq("p", 1, holder("me", now, time.Minute), now.Add(time.Second))); !g.OK || g.Slot != 0 {
		t.Fatalf("expired lease not taken over: %+v", g)
	}
	slots, _ := s.Slots(context.Background(), "p")
	if len(slots) != 1 || slots[0].Lease.Owner != "me" {
		t.Errorf("slots after take-over = %+v", slots)
	}
}

// testSlotDeadOwner: on the holder's host a slot is free as soon as its
// pid is gone, long before its lease expires (a kill -9).
func testSlotDeadOwner(t *testing.T, s store.SlotLeaser) {
	now := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := store.Lease{Owner: "dead", PID: cmd.Process.Pid, Host: store.Hostname(), Expires: now.Add(time.Hour)}
	if g := mustAcquire(t, s, slotReq("p", 1, dead, now)); !g.OK {
		t.Fatalf("grant %+v", g)
	}
	if g := mustAcquire(t, s, slotReq("p", 1, holder("me", now, time.Minute), now)); !g.OK {
		t.Fatalf("slot of a dead pid not reclaimed: %+v", g)
	}
	// A live pid on this host keeps its slot.
	if g := mustAcquire(t, s, slotReq("p", 1, holder("other", now, time.Minute), now)); g.OK {
		t.Fatalf("took the slot of a live process: %+v", g)
	}
}

func testSlotRenew(t *testing.T, s store.SlotLeaser) {
	ctx := context.Background()
	now := time.Now()
	far := func(o string, exp time.Time) store.Lease {
		return store.Lease{Owner: o, PID: 1, Host: "another-host.invalid", Expires: exp}
	}
	for _, pool := range []string{"p", "q"} {
		if g := mustAcquire(t, s, slotReq(pool, 1, far("r", now.Add(time.Second)), now)); !g.OK {
			t.Fatal(g)
		}
	}
	n, err := s.RenewSlots(ctx, "r", now.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("RenewSlots = %d, %v; want 2", n, err)
	}
	if g := mustAcquire(t, s, slotReq("p", 1, far("x", now.Add(time.Hour)), now.Add(time.Minute))); g.OK {
		t.Fatalf("a renewed slot was taken at its old expiry: %+v", g)
	}
	if n, err := s.RenewSlots(ctx, "nobody", now); err != nil || n != 0 {
		t.Errorf("RenewSlots of an owner without slots = %d, %v", n, err)
	}
	if err := s.ReleaseSlots(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	for _, pool := range []string{"p", "q"} {
		if slots, err := s.Slots(ctx, pool); err != nil || len(slots) != 0 {
			t.Errorf("pool %s after ReleaseSlots: %+v, %v", pool, slots, err)
		}
	}
}

func testSlotReleaseOwnOnly(t *testing.T, s store.SlotLeaser) {
	ctx := context.Background()
	now := time.Now()
	mustAcquire(t, s, slotReq("p", 1, holder("a", now, time.Minute), now))
	// b's stale release (its slot expired and a took it) frees nothing.
	if err := s.ReleaseSlot(ctx, "p", 0, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSlots(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if slots, _ := s.Slots(ctx, "p"); len(slots) != 1 || slots[0].Lease.Owner != "a" {
		t.Errorf("another owner's release freed a's slot: %+v", slots)
	}
}

func testSlotRate(t *testing.T, s store.SlotLeaser) {
	now := time.Now()
	req := func(at time.Duration) store.SlotRequest {
		r := slotReq("api", 0, holder("a", now, time.Minute), now.Add(at))
		r.Rate, r.Burst = 10, 2
		return r
	}
	for i := 0; i < 2; i++ {
		if g := mustAcquire(t, s, req(0)); !g.OK || g.Slot != -1 {
			t.Fatalf("burst token %d: %+v", i, g)
		}
	}
	g := mustAcquire(t, s, req(0))
	if g.OK || g.Busy || g.Wait < 99*time.Millisecond || g.Wait > 101*time.Millisecond {
		t.Fatalf("after the burst: %+v, want a wait of 100ms", g)
	}
	if g := mustAcquire(t, s, req(50*time.Millisecond)); g.OK || g.Wait < 49*time.Millisecond || g.Wait > 51*time.Millisecond {
		t.Fatalf("half a token: %+v, want a wait of 50ms", g)
	}
	if g := mustAcquire(t, s, req(100*time.Millisecond)); !g.OK {
		t.Fatalf("refilled token: %+v", g)
	}
	if g := mustAcquire(t, s, req(100*time.Millisecond)); g.OK {
		t.Fatalf("one token refilled, two taken: %+v", g)
	}
	// A long pause refills the bucket to its burst, not beyond.
	for i := 0; i < 2; i++ {
		if g := mustAcquire(t, s, req(time.Hour)); !g.OK {
			t.Fatalf("token %d after a pause: %+v", i, g)
		}
	}
	if g := mustAcquire(t, s, req(time.Hour)); g.OK {
		t.Fatalf("bucket refilled beyond its burst: %+v", g)
	}
}

// testSlotTokenOnlyWithSlot: a caller that waits for a slot does not burn
// rate tokens.
func testSlotTokenOnlyWithSlot(t *testing.T, s store.SlotLeaser) {
	now := time.Now()
	req := func(o string) store.SlotRequest {
		r := slotReq("p", 1, holder(o, now, time.Minute), now)
		r.Rate, r.Burst = 1, 2
		return r
	}
	if g := mustAcquire(t, s, req("a")); !g.OK {
		t.Fatal(g)
	}
	for i := 0; i < 5; i++ {
		if g := mustAcquire(t, s, req("b")); g.OK {
			t.Fatalf("took a held slot: %+v", g)
		}
	}
	if err := s.ReleaseSlot(context.Background(), "p", 0, "a"); err != nil {
		t.Fatal(err)
	}
	if g := mustAcquire(t, s, req("b")); !g.OK {
		t.Fatalf("the second burst token was burnt while waiting: %+v", g)
	}
}

func testSlotPoolsIsolated(t *testing.T, s store.SlotLeaser) {
	now := time.Now()
	for _, pool := range []string{"a", "b"} {
		if g := mustAcquire(t, s, slotReq(pool, 1, holder("o", now, time.Minute), now)); !g.OK {
			t.Fatalf("pool %s: %+v", pool, g)
		}
	}
}

func testSlotRejects(t *testing.T, s store.SlotLeaser) {
	now := time.Now()
	for _, req := range []store.SlotRequest{
		slotReq("", 1, holder("o", now, time.Minute), now),
		slotReq("p", 1, holder("", now, time.Minute), now),
		slotReq("p", -1, holder("o", now, time.Minute), now),
	} {
		if _, err := s.AcquireSlot(context.Background(), req); err == nil {
			t.Errorf("AcquireSlot(%+v) succeeded", req)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AcquireSlot(ctx, slotReq("p", 1, holder("o", now, time.Minute), now)); err == nil {
		t.Error("AcquireSlot with a cancelled context succeeded")
	}
}

// testSlotRace: owners racing for a pool of 3 never hold more than 3 slots.
func testSlotRace(t *testing.T, s store.SlotLeaser) {
	const owners, rounds, capacity = 8, 15, 3
	var (
		held, peak atomic.Int32
		wg         sync.WaitGroup
		errs       = make(chan error, owners)
	)
	for i := 0; i < owners; i++ {
		wg.Add(1)
		go func(o string) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				now := time.Now()
				g, err := s.AcquireSlot(context.Background(), slotReq("race", capacity, holder(o, now, time.Minute), now))
				if err != nil {
					errs <- err
					return
				}
				if !g.OK {
					time.Sleep(time.Millisecond)
					continue
				}
				n := held.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Millisecond) // hold it, so overlaps would show
				held.Add(-1)
				if err := s.ReleaseSlot(context.Background(), "race", g.Slot, o); err != nil {
					errs <- err
					return
				}
			}
		}(string(rune('a' + i)))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p := peak.Load(); p > capacity || p == 0 {
		t.Errorf("peak slots held = %d, want 1..%d", p, capacity)
	}
}
