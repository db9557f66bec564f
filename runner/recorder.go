package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lgx-run/lgx/store"
)

// recordLinger is how long the recorder lets the invocations of a parallel
// step gather before it commits them. A commit costs about 60 µs of CPU in
// the pure-Go SQLite whatever it holds, an item about 1 µs more, and each
// commit rewrites the partly filled pages it touches: at 20,000 finished
// items a second, a 1 ms linger committed every 20 items and spent 6 % of
// the run's CPU on commits. A quiet machine finishes the 2,000-GET
// benchmark's items at about 45,000 a second: 5 ms committed every 220,
// ten commits a run; 20 ms and recordBatch 1,024 commit about three, and
// took the SQLite run from 0.941 to 0.958 of the memory store's
// throughput (medians of 40 interleaved rounds, issue 13). It is also the
// most a kill -9 can make resume send again of a slow fan-out (a fast one
// is bounded by recordBatch), with the same idempotency keys.
const recordLinger = 20 * time.Millisecond

// recordBatch commits at once when this many invocations are waiting.
const recordBatch = 1024

// recorder records the invocations of parallel steps in the background,
// many per transaction (store.RecordInvocations). A finished invocation is
// handed over at once and committed within recordLinger; the step barrier
// flushes, so every invocation of a step is durable before its checkpoint
// and before any later step starts (DESIGN: durable before the barrier
// moves on). A crash can lose the last milliseconds of finished items, which
// resume runs again with the same idempotency keys; it never loses anything
// that was committed.
type recorder struct {
	st     store.Store
	linger time.Duration // recordLinger; tests set it
	// lease is the run's (nil: none to check): a batch is written only
	// while the run is still this process's (heldLease.confirm).
	lease *heldLease

	mu      sync.Mutex
	queue   []*store.Invocation
	pending int   // added and not yet committed
	err     error // the first failure, reported by the next flush
	urgent  bool  // commit at the next wake-up, not after the linger (hurry)

	wake    chan struct{}   // something was queued (capacity 1)
	flushes chan chan error // commit all now and report
	stop    chan struct{}
	done    chan struct{}
}

// newRecorder starts the recorder's goroutine; close ends it.
func newRecorder(st store.Store, linger time.Duration, lease *heldLease) *recorder {
	rc := &recorder{st: st, linger: linger, lease: lease, wake: make(chan struct{}, 1), flushes: make(chan chan error),
		stop: make(chan struct{}), done: make(chan struct{})}
	go rc.loop()
	return rc
}

// add queues inv for recording; it does not wait.
func (rc *recorder) add(inv *store.Invocation) {
	rc.mu.Lock()
	rc.queue = append(rc.queue, inv)
	rc.pending++
	n := len(rc.queue)
	rc.mu.Unlock()
	if n == 1 || n >= recordBatch {
		select {
		case rc.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// hurry commits what is queued now, without waiting for the linger, when
// at least min invocations are: a step's last invocations have started,
// so its barrier is near, and what is committed while they run is not
// committed by the barrier, after the step's last one ended, when the
// run waits for it (BenchmarkHTTPThroughput: the barrier wrote about 400
// records, 0.27 ms after the last request).
func (rc *recorder) hurry(min int) {
	rc.mu.Lock()
	ok := len(rc.queue) >= min
	rc.urgent = rc.urgent || ok
	rc.mu.Unlock()
	if ok {
		select {
		case rc.wake <- struct{}{}:
		default: // a wake-up is already pending, which will see urgent
		}
	}
}

// flush commits everything queued and returns the first error since the
// last flush.
func (rc *recorder) flush() error {
	rc.mu.Lock()
	idle := rc.pending == 0 && rc.err == nil
	rc.mu.Unlock()
	if idle { // the common case of a step that recorded nothing here
		return nil
	}
	ack := make(chan error)
	rc.flushes <- ack
	return <-ack
}

// close commits what is queued and ends the goroutine.
func (rc *recorder) close() {
	close(rc.stop)
	<-rc.done
}

func (rc *recorder) loop() {
	defer close(rc.done)
	timer := time.NewTimer(rc.linger)
	timer.Stop()
	armed := false
	for {
		select {
		case <-rc.wake:
			if rc.due() {
				rc.commit()
			} else if !armed {
				timer.Reset(rc.linger)
				armed = true
			}
		case <-timer.C:
			armed = false
			rc.commit()
		case ack := <-rc.flushes:
			rc.commit()
			rc.mu.Lock()
			err := rc.err
			rc.err = nil
			rc.mu.Unlock()
			ack <- err
		case <-rc.stop:
			timer.Stop()
			rc.commit()
			return
		}
	}
}

// due reports whether the queue is to be committed at once: it is full,
// or hurry asked.
func (rc *recorder) due() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.queue) >= recordBatch || rc.urgent && len(rc.queue) > 0
}

// commit records the queue in one call. Records are written even after
// the run was cancelled: they are what resume relies on.
func (rc *recorder) commit() {
	rc.mu.Lock()
	batch := rc.queue
	rc.queue, rc.urgent = nil, false
	rc.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := rc.lease.confirm()
	if err != nil {
		// Another process executes the run now: its records stand.
		err = fmt.Errorf("not recorded: %w", err)
	} else {
		err = store.RecordInvocations(context.Background(), rc.st, batch)
	}
	rc.mu.Lock()
	rc.pending -= len(batch)
	if err != nil && rc.err == nil {
		rc.err = err
	}
	rc.mu.Unlock()
}
