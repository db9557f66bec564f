package temporal

import (
	"context"
	"sync"

	"go.temporal.io/sdk/worker"
	"golang.org/x/sync/semaphore"
)

// workerSlots is a worker's bound on the invocations it runs at once
// (lgx worker --max-activities): every invocation takes a slot while it
// runs, whether it is an activity of its own or an item of a chunk (one
// activity running up to maxChunk items). Bounding activity tasks alone
// would let one worker run a chunk's 32 items under a bound of 5, and
// the workers would not be what limits a batch's throughput.
//
// It is also the worker's activity slot supplier: the worker polls for
// another activity task only while a slot is free, so a busy worker
// leaves new tasks to idle ones rather than taking work it cannot start.
// A task holds a task slot (at most max at once, as the SDK's own bound)
// but no invocation slot: items of a running chunk are not held back by
// a poller that found nothing to do.
type workerSlots struct {
	max   int
	inv   *semaphore.Weighted // invocations running
	tasks *semaphore.Weighted // activity tasks reserved or running

	mu      sync.Mutex
	running int
	room    chan struct{} // closed (and replaced) when running falls below max
}

func newWorkerSlots(max int) *workerSlots {
	return &workerSlots{max: max, inv: semaphore.NewWeighted(int64(max)),
		tasks: semaphore.NewWeighted(int64(max)), room: make(chan struct{})}
}

// acquire is a runner.Gate: it waits for an invocation slot.
func (w *workerSlots) acquire(ctx context.Context) (func(), error) {
	if err := w.inv.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.running++
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			w.running--
			if w.running == w.max-1 {
				close(w.room)
				w.room = make(chan struct{})
			}
			w.mu.Unlock()
			w.inv.Release(1)
		})
	}, nil
}

// full reports whether every invocation slot is taken, and the channel
// closed when one frees.
func (w *workerSlots) full() (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running >= w.max, w.room
}

// ReserveSlot implements worker.SlotSupplier: called before each poll,
// it waits for a task slot and for an invocation slot to be free.
func (w *workerSlots) ReserveSlot(ctx context.Context, _ worker.SlotReservationInfo) (*worker.SlotPermit, error) {
	if err := w.tasks.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	for {
		full, room := w.full()
		if !full {
			return &worker.SlotPermit{}, nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			w.tasks.Release(1)
			return nil, ctx.Err()
		}
	}
}

// TryReserveSlot implements worker.SlotSupplier (eager activities).
func (w *workerSlots) TryReserveSlot(worker.SlotReservationInfo) *worker.SlotPermit {
	if !w.tasks.TryAcquire(1) {
		return nil
	}
	if full, _ := w.full(); full {
		w.tasks.Release(1)
		return nil
	}
	return &worker.SlotPermit{}
}

func (w *workerSlots) MarkSlotUsed(worker.SlotMarkUsedInfo) {}

func (w *workerSlots) ReleaseSlot(worker.SlotReleaseInfo) { w.tasks.Release(1) }

func (w *workerSlots) MaxSlots() int { return w.max }

// tuner is the worker's tuner with w as its activity slot supplier and
// the SDK's default sizes for everything else.
func (w *workerSlots) tuner() (worker.WorkerTuner, error) {
	fixed, err := worker.NewFixedSizeTuner(worker.FixedSizeTunerOptions{NumActivitySlots: w.max})
	if err != nil {
		return nil, err
	}
	return worker.NewCompositeTuner(worker.CompositeTunerOptions{
		WorkflowSlotSupplier:        fixed.GetWorkflowTaskSlotSupplier(),
		ActivitySlotSupplier:        w,
		LocalActivitySlotSupplier:   fixed.GetLocalActivitySlotSupplier(),
		NexusSlotSupplier:           fixed.GetNexusSlotSupplier(),
		SessionActivitySlotSupplier: fixed.GetSessionActivitySlotSupplier(),
	})
}
