package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// SlotLeaser is implemented by stores that hold the slots and rate tokens
// of machine-wide pools (SPEC §9.9: pools declared in the user's config,
// shared by every lgx process that uses the store). A slot is a lease like
// a run's: its owner renews it while it works and releases it when done; a
// slot whose owner died is free again once its lease expired or, on the
// owner's host, as soon as its pid is gone.
type SlotLeaser interface {
	// AcquireSlot takes, in one transaction, a free slot of req.Pool (when
	// req.Concurrency > 0) and a rate token (when req.Rate > 0). When
	// either is missing it takes nothing and returns a grant that is not
	// OK, with how long to wait before asking again when it is known (a
	// rate token's refill time, a slot lease's expiry).
	AcquireSlot(ctx context.Context, req SlotRequest) (SlotGrant, error)
	// RenewSlots moves the expiry of every slot owner holds to expires and
	// returns how many it holds.
	RenewSlots(ctx context.Context, owner string, expires time.Time) (int, error)
	// ReleaseSlot frees one slot of owner; a no-op when owner does not
	// hold it (it expired and was taken over).
	ReleaseSlot(ctx context.Context, pool string, slot int, owner string) error
	// ReleaseSlots frees every slot owner holds.
	ReleaseSlots(ctx context.Context, owner string) error
	// Slots lists the slot leases of pool, live or not, by slot number.
	Slots(ctx context.Context, pool string) ([]SlotLease, error)
}

// SlotTTL is how long a slot lease lives without renewal; its holder
// renews it every SlotTTL/3. A holder killed with kill -9 keeps its slots
// from other hosts at most this long (on its own host, until its pid is
// seen gone).
const SlotTTL = 10 * time.Second

// SlotRequest asks for one slot and one rate token of a machine-wide pool.
type SlotRequest struct {
	Pool        string
	Concurrency int     // slots of the pool; 0 = no slot is taken
	Rate        float64 // tokens per second; 0 = no token is taken
	Burst       int     // the token bucket's size; <= 0 means max(1, Concurrency)
	// Holder names the taker: Owner is unique per process, Expires is when
	// the slot frees itself unless renewed.
	Holder Lease
	RunID  string
	// Now is the taker's clock: it decides which leases expired and how
	// many tokens refilled. Hosts sharing a store must keep their clocks
	// in sync (NTP), as for run leases.
	Now time.Time
}

// SlotGrant is AcquireSlot's answer.
type SlotGrant struct {
	OK   bool
	Slot int // the slot taken; -1 when the pool has no concurrency cap
	// Busy, when the grant is not OK, says every slot is held; Wait is
	// then when the soonest lease expires (a holder may release earlier:
	// poll). Otherwise a slot was free but no rate token, and Wait is
	// exactly when the next one is due.
	Busy bool
	Wait time.Duration
}

// SlotLease is one slot of a pool and its holder.
type SlotLease struct {
	Pool  string
	Slot  int
	Lease Lease
	RunID string
}

// TokenBucket is a pool's stored rate state: Tokens as of At. A bucket
// never written (Known false) is full.
type TokenBucket struct {
	Tokens float64
	At     time.Time
	Known  bool
}

// CheckSlotRequest rejects a request a store cannot key.
func CheckSlotRequest(req SlotRequest) error {
	switch {
	case req.Pool == "":
		return errors.New("acquire slot: empty pool name")
	case req.Holder.Owner == "":
		return fmt.Errorf("acquire slot of pool %s: empty owner", req.Pool)
	case req.Concurrency < 0 || req.Rate < 0 || math.IsNaN(req.Rate) || math.IsInf(req.Rate, 0):
		return fmt.Errorf("acquire slot of pool %s: bad caps (concurrency %d, rate %v)", req.Pool, req.Concurrency, req.Rate)
	}
	return nil
}

// PlanSlot decides an AcquireSlot from the pool's stored slots and token
// bucket, the same way for every SQL dialect: which slot to write (take),
// and the bucket to store when a token was taken (write). A slot is free
// when no lease holds its number or its lease is dead (Lease.Alive); the
// lowest free number is taken. The bucket refills at req.Rate up to its
// burst; a token is taken only together with a slot, so a waiting caller
// never burns tokens it cannot use.
func PlanSlot(req SlotRequest, slots []SlotLease, b TokenBucket) (g SlotGrant, nb TokenBucket, take, write bool) {
	g.Slot = -1
	if req.Concurrency > 0 {
		live := make(map[int]bool, len(slots))
		var soonest time.Time
		for i := range slots {
			l := &slots[i].Lease
			if l.Alive(req.Now) {
				live[slots[i].Slot] = true
				if soonest.IsZero() || l.Expires.Before(soonest) {
					soonest = l.Expires
				}
			}
		}
		if len(live) >= req.Concurrency {
			return SlotGrant{Slot: -1, Busy: true, Wait: max(0, soonest.Sub(req.Now))}, b, false, false
		}
		for n := 0; ; n++ {
			if !live[n] {
				g.Slot = n
				break
			}
		}
		take = true
	}
	if req.Rate > 0 {
		burst := float64(req.Burst)
		if req.Burst <= 0 {
			burst = float64(max(1, req.Concurrency))
		}
		tokens := burst
		if b.Known {
			// A clock that went back refills nothing.
			elapsed := max(0, req.Now.Sub(b.At).Seconds())
			tokens = min(burst, b.Tokens+elapsed*req.Rate)
		}
		if tokens < 1 {
			wait := time.Duration((1 - tokens) / req.Rate * float64(time.Second))
			return SlotGrant{Slot: -1, Wait: max(wait, time.Microsecond)}, b, false, false
		}
		nb, write = TokenBucket{Tokens: tokens - 1, At: req.Now, Known: true}, true
	}
	g.OK = true
	return g, nb, take, write
}
