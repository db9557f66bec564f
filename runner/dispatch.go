package runner

import (
	"context"
	"sync"
	"sync/atomic"
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
	// tasks hands a step's work to the workers, one message per worker
	// the step needs; nil until a step needs them.
	tasks    chan *stepWork
	step     stepWork // the current step's, reused: no worker holds it once dispatch returns
	workers  int
	workerWG sync.WaitGroup
}

// stepWork is a step's invocations for the workers. Each worker told of
// it takes the next invocation by an atomic cursor until none is left,
// so that an invocation costs no channel hand-over and no wake-up of the
// loop's goroutine (BenchmarkForEachOnWorkers: -9 % CPU per item); they
// are taken in order, as the channel of tasks gave them before. The
// cursor counts the items of runs one after the other (ends), reused
// ones included, which the workers skip.
//
// The workers are told one after the other: the loop tells one, and each
// worker, as it takes its first invocation, tells the next (untold). Told
// all at once, the 64 workers of a fan-out of requests were all runnable
// together, and the scheduler, which polls the network only once it runs
// out of goroutines to run, answered none of the first responses before
// every worker had sent its first request: the first reached a local
// server 2.6 ms after the first worker started, against 0.9 ms for as
// many goroutines started by a loop (BenchmarkHTTPThroughput, in one
// process: +0.014 of plain's throughput, 10 of 12 sets better).
type stepWork struct {
	ctx    context.Context
	cancel context.CancelFunc
	runs   []*nodeRun // the step's nodes that run on workers
	ends   []int      // ends[j]: the items of runs[:j+1]
	next   atomic.Int64
	untold atomic.Int64 // workers the step needs that were not told yet
	// closeEarly: the run's last step (lastStep), of nodes done with the
	// run's connections once their request is answered (node.doneWithHTTP).
	closeEarly bool
	wg         sync.WaitGroup // one per worker the step needs
}

// doneWithHTTP reports whether every node of a step is done with the
// run's connections once its invocations' requests are answered: not a
// subgraph's children, a tools node's calls or a model's turns, which
// may send more and would dial again.
func doneWithHTTP(runs []*nodeRun) bool {
	for _, nr := range runs {
		if !nr.n.doneWithHTTP {
			return false
		}
	}
	return true
}

// noWaitBeyondWorkers reports whether an invocation a worker took starts
// at once, as far as its caps go: no node cap below the workers, no pool
// (shared with other nodes, perhaps rate limited). Otherwise invocations
// taken may still wait to send their request when the step's items are
// all taken, and an early close would make them dial again.
func (d *localDispatcher) noWaitBeyondWorkers(runs []*nodeRun) bool {
	for _, nr := range runs {
		c := d.r.caps[nr.n.idx]
		if len(c.pools) > 0 || (c.node != nil && c.node.capacity() < d.workers) {
			return false
		}
	}
	return true
}

// tellNext tells one more worker of the step, if any is left to tell.
func (w *stepWork) tellNext(d *localDispatcher) {
	for {
		u := w.untold.Load()
		if u <= 0 {
			return
		}
		if w.untold.CompareAndSwap(u, u-1) {
			d.tasks <- w
			return
		}
	}
}

// take runs the step's invocations left, from the cursor on.
func (w *stepWork) take(d *localDispatcher, c *call, ac *attemptCtx) {
	total := w.ends[len(w.ends)-1]
	j, start := 0, 0
	told := false // this worker told the next one
	for {
		k := int(w.next.Add(1)) - 1
		if k >= total {
			// Nothing left: the workers not told yet are not needed.
			if n := w.untold.Swap(0); n > 0 {
				w.wg.Add(-int(n))
			}
			if k == total && d.r.rec != nil {
				// Every invocation of the step has started (only the
				// first worker to find none left gets here): the
				// recorder commits what finished so far while the last
				// ones run, if that is more than they are.
				d.r.rec.hurry(d.workers)
			}
			if k == total && w.closeEarly {
				d.r.closeIdleHTTP()
			}
			return
		}
		for k >= w.ends[j] { // a worker's k only grows: j moves forward
			start = w.ends[j]
			j++
		}
		nr, i := w.runs[j], k-start
		res := &nr.res[i]
		if res.reused {
			continue
		}
		var item any
		if nr.items != nil {
			item = nr.items[i]
		}
		if !told {
			told = true
			w.tellNext(d)
		}
		d.r.invokeOn(w.ctx, c, ac, nr.n, itemIndex(nr, i), item, res, false)
		if res.failed() {
			w.cancel()
		}
	}
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
	w := &d.step
	if total > 0 {
		d.startWorkers(total)
		w.ctx, w.cancel, w.runs, w.ends = sctx, cancel, w.runs[:0], w.ends[:0]
		w.closeEarly = lastStep(runs) && doneWithHTTP(runs) && d.noWaitBeyondWorkers(runs)
		w.next.Store(0)
		todo, end := 0, 0
		for _, nr := range runs {
			if nr.n.instant {
				continue
			}
			ts := d.turnstileFor(nr, len(runs) == 1)
			ord := 0
			for i := range nr.res {
				if ts == nil && todo >= d.workers {
					// todo only decides how many workers to tell: past
					// that, counting 2,000 items' results read 400 KB
					// before the first invocation started (75 µs).
					break
				}
				if nr.res[i].reused {
					continue
				}
				if ts != nil {
					nr.res[i].turn = turn{ts: ts, ord: ord}
					ord++
				}
				todo++
			}
			end += len(nr.res)
			w.runs, w.ends = append(w.runs, nr), append(w.ends, end)
		}
		if m := min(d.workers, todo); m > 0 {
			w.wg.Add(m)
			w.untold.Store(int64(m - 1))
			d.tasks <- w // the first; see stepWork
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
	if total > 0 {
		w.wg.Wait()
		clear(w.runs) // nothing of the step outlives it here
		w.ctx, w.cancel = nil, nil
	}
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
		// One message per worker a step needs, each the step's work:
		// buffered as deep as the first step's workers, so that the loop
		// hands them over without waiting for each worker to be
		// scheduled (later steps with more workers find them waiting).
		d.tasks = make(chan *stepWork, want)
	}
	for ; d.workers < want; d.workers++ {
		d.workerWG.Add(1)
		go d.work()
	}
}

// workerStack is how much stack a worker grows to before its first
// invocation, which runs about 10 KB deep (the invocation's frames, the
// node type's, net/http's): past the 8 KB a goroutine starts with, the
// stack would be copied, live, in the middle of the step's first wave of
// invocations. Grown at once, it is copied empty; with the workers
// started during the run's setup (run.begin), off the path. Neither alone
// measured a difference; together, +0.026 of plain's throughput.
const workerStack = 12 << 10

// growStack uses a frame of workerStack bytes.
//
//go:noinline
func growStack(i int) byte {
	var pad [workerStack]byte
	pad[i%workerStack] = byte(i)
	return pad[(i*7)%workerStack]
}

func (d *localDispatcher) work() {
	defer d.workerWG.Done()
	growStack(1)
	var ac attemptCtx
	defer ac.release()
	c := callPool.Get().(*call) // this worker's, reused by its invocations
	defer callPool.Put(c)
	for w := range d.tasks {
		w.take(d, c, &ac)
		w.wg.Done()
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
