package runner

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lgx-run/lgx/spec"
)

// keyedPool holds the key buckets of a pool that nodes take with a key
// (`pool: {name, key}`, SPEC §9.9): one bucket per distinct key value,
// created on first use with the same caps, and dropped when idle so that a
// crawl over a million hosts keeps only the busy ones.
//
// A bucket is idle when no invocation holds or waits for it and, if it has
// a rate, its token bucket is full again: dropping it earlier would let a
// fresh bucket burst past the rate. Buckets without a rate go at once;
// rated ones are swept when the map has doubled since the last sweep, so
// the map stays within twice the keys used in the last refill period.
type keyedPool struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	free    []*bucket // dropped buckets without a rate, for reuse
	conc    int
	limit   rate.Limit // 0 = no rate
	burst   int
	sweepAt int              // sweep when len(buckets) reaches it
	now     func() time.Time // time.Now; tests move it
}

// bucket is one key's caps.
type bucket struct {
	key     string
	sem     *semaphore    // nil = no concurrency cap
	limiter *rate.Limiter // nil = no rate
	refs    int           // invocations holding or waiting for it; under keyedPool.mu
}

// minSweep is the map size below which rated idle buckets are never swept.
const minSweep = 64

func newKeyedPool(l spec.PoolLimits) *keyedPool {
	k := &keyedPool{buckets: map[string]*bucket{}, conc: l.Concurrency, burst: l.Burst, sweepAt: minSweep, now: time.Now}
	if ps := l.Rate.PerSecond(); ps > 0 {
		k.limit = rate.Limit(ps)
		if k.burst <= 0 {
			k.burst = max(1, l.Concurrency)
		}
	}
	return k
}

// get returns key's bucket, created if needed, counted as used until put.
func (k *keyedPool) get(key string) *bucket {
	k.mu.Lock()
	b := k.buckets[key]
	if b == nil {
		if k.limit > 0 && len(k.buckets) >= k.sweepAt {
			k.sweep()
			k.sweepAt = max(minSweep, 2*len(k.buckets))
		}
		if n := len(k.free); n > 0 {
			b = k.free[n-1]
			k.free = k.free[:n-1]
		} else {
			b = &bucket{sem: newSemaphore(k.conc)}
			if k.limit > 0 {
				b.limiter = rate.NewLimiter(k.limit, k.burst)
			}
		}
		b.key = key
		k.buckets[key] = b
	}
	b.refs++
	k.mu.Unlock()
	return b
}

// put ends one use of b taken by get.
func (k *keyedPool) put(b *bucket) {
	k.mu.Lock()
	b.refs--
	if b.refs == 0 && b.limiter == nil {
		// Nobody holds a slot of an unreferenced bucket: its semaphore is
		// empty and the bucket can serve another key.
		delete(k.buckets, b.key)
		if len(k.free) < minSweep {
			k.free = append(k.free, b)
		}
	}
	k.mu.Unlock()
}

// sweep drops the rated buckets that are idle with a full token bucket.
// Called with k.mu held.
func (k *keyedPool) sweep() {
	now := k.now()
	for key, b := range k.buckets {
		if b.refs == 0 && b.limiter.TokensAt(now) >= float64(k.burst) {
			delete(k.buckets, key)
		}
	}
}

// size is the number of buckets kept (for tests).
func (k *keyedPool) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// acquire takes a slot of b, then a rate token (unless tokensGiven: the
// caller took it), reporting what it waits for. On error nothing is held.
func (b *bucket) acquire(ctx context.Context, pool string, onWait func(string), tokensGiven bool) error {
	var wait func()
	if onWait != nil {
		wait = func() { onWait("pool " + pool + " key " + b.key) }
	}
	if err := b.sem.acquire(ctx, wait); err != nil {
		return err
	}
	if b.limiter != nil && !tokensGiven && !b.limiter.Allow() {
		if onWait != nil {
			onWait("rate " + pool + " key " + b.key)
		}
		if err := b.limiter.Wait(ctx); err != nil {
			b.sem.release()
			return err
		}
	}
	return nil
}
