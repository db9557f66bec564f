package runner

import (
	"context"
	"sync"
)

// dispatcher runs the invocations of one step under the caps and fills in
// their outcomes (nodeRun.res), returning once every one has ended; a
// failing invocation cancels the rest of the step. It decides nothing
// about the run: the step core (core.go) formed the step and reads the
// outcomes, the journal (journal.go) is handed each finished invocation
// as it ends. The local dispatcher runs them on this process's worker
// goroutines; a distributed one would run them as remote activities.
type dispatcher interface {
	dispatch(ctx context.Context, runs []*nodeRun)
	// close stops what the dispatcher started; no goroutine outlives it.
	close()
}

// localDispatcher runs invocations on a pool of worker goroutines that
// lives as long as the run, sized by the global cap.
type localDispatcher struct {
	r        *run
	loopAC   attemptCtx // attempt contexts of invocations run on the loop's goroutine
	loopCall *call      // the call of invocations run on the loop's goroutine (from callPool, reused)
	tasks    chan task  // to the workers; nil until a step needs them
	workers  int
	workerWG sync.WaitGroup
}

// dispatch runs a step's invocations concurrently; a failing one cancels the
// others. A step of one node without for_each runs inline.
func (d *localDispatcher) dispatch(ctx context.Context, runs []*nodeRun) {
	if len(runs) == 1 && runs[0].items == nil {
		if !runs[0].res[0].reused {
			n := runs[0].n
			d.r.invokeOn(ctx, d.inlineCall(), &d.loopAC, n, -1, nil, &runs[0].res[0], n.instant && d.r.opts.limits == nil)
		}
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Invocations of types that do no work (set, interrupt) run inline
	// after the others were handed to workers: a goroutine handoff would
	// cost more than they do.
	total := 0
	for _, nr := range runs {
		if !nr.n.instant {
			total += len(nr.res)
		}
	}
	var wg sync.WaitGroup
	if total > 0 {
		d.startWorkers(total)
		for _, nr := range runs {
			if nr.n.instant {
				continue
			}
			ts := d.turnstileFor(nr, len(runs) == 1)
			ord := 0
			for i := range nr.res {
				if nr.res[i].reused {
					continue
				}
				if ts != nil {
					nr.res[i].turn = turn{ts: ts, ord: ord}
					ord++
				}
				t := task{ctx: sctx, cancel: cancel, wg: &wg, n: nr.n, index: itemIndex(nr, i), res: &nr.res[i]}
				if nr.items != nil {
					t.item = nr.items[i]
				}
				wg.Add(1)
				d.tasks <- t
			}
		}
	}
	for _, nr := range runs {
		if !nr.n.instant {
			continue
		}
		for i := range nr.res {
			if nr.res[i].reused {
				continue
			}
			var item any
			if nr.items != nil {
				item = nr.items[i]
			}
			d.r.invokeOn(sctx, d.inlineCall(), &d.loopAC, nr.n, itemIndex(nr, i), item, &nr.res[i], false)
			if nr.res[i].failed() {
				cancel()
			}
		}
	}
	wg.Wait()
}

// task is one invocation handed to a worker.
type task struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     *sync.WaitGroup
	n      *node
	index  int
	item   any
	res    *invResult
}

// startWorkers makes sure enough workers run for a step of n invocations:
// as many as can hold a global slot at once (the global cap), at most n.
// Workers live until the run ends, so their stacks are grown once, not per
// invocation.
func (d *localDispatcher) startWorkers(n int) {
	want := n
	if c := d.r.lim.global.capacity(); c > 0 && c < want {
		want = c
	}
	if d.tasks == nil {
		// Buffered as deep as the first step's workers: with an unbuffered
		// channel every hand-over of a busy step parked the loop's
		// goroutine until a worker was scheduled to take the item, and the
		// worker until the loop was scheduled to give the next one.
		// Buffered, a worker that ends an item takes the next from the
		// buffer at once. For 2,000 instant items on 64 workers
		// (BenchmarkForEachOnWorkers): -9 % wall, -8 % CPU per item,
		// +0.2 % bytes (4.6 KB for 64 workers), benchstat n=8. Items leave
		// the buffer in the order they were sent, as before, so the
		// turnstile's order and the tasks a cancelled step still hands out
		// are unchanged.
		d.tasks = make(chan task, want)
	}
	for ; d.workers < want; d.workers++ {
		d.workerWG.Add(1)
		go d.work()
	}
}

func (d *localDispatcher) work() {
	defer d.workerWG.Done()
	var ac attemptCtx
	defer ac.release()
	c := callPool.Get().(*call) // this worker's, reused by its invocations
	defer callPool.Put(c)
	for t := range d.tasks {
		d.r.invokeOn(t.ctx, c, &ac, t.n, t.index, t.item, t.res, false)
		if t.res.failed() {
			t.cancel()
		}
		t.wg.Done()
	}
}

// inlineCall returns the call reused by the invocations the loop's
// goroutine runs, without the pool's Get and Put per invocation (5 % of
// a set node's).
func (d *localDispatcher) inlineCall() *call {
	if d.loopCall == nil {
		d.loopCall = callPool.Get().(*call)
	}
	return d.loopCall
}

// close ends the workers; no goroutine outlives the run.
func (d *localDispatcher) close() {
	if d.loopCall != nil {
		callPool.Put(d.loopCall)
		d.loopCall = nil
	}
	if d.tasks != nil {
		close(d.tasks)
		d.workerWG.Wait()
		d.tasks, d.workers = nil, 0
	}
}
