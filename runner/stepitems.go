package runner

import (
	"context"
	"fmt"
	"sync"

	"github.com/lgx-run/lgx/store"
)

// InvokeItems runs the invocations node[index] for each index of items,
// all at once, as Invoke runs each (a scheduler that sends a chunk of a
// large for_each to one worker, having counted one slot per item against
// the caps). The first failure, in item order, cancels the others, as a
// failing step cancels its other invocations locally. The result is the
// first failure's, or a cancellation's, or else the first item's with
// Recorded true only when every item was recorded before.
//
// gate, when not nil, is what each item takes before it runs and
// releases when it ends: a worker's bound on the invocations it runs at
// once (a chunk is one activity, the bound counts its items). Items take
// it in item order; one still waiting when the chunk is cancelled is
// cancelled without running.
func (s *StepRun) InvokeItems(ctx context.Context, in Invocation, items []int, gate Gate) (*InvokeResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make([]*InvokeResult, len(items))
	errs := make([]error, len(items))
	var byPath map[string]*store.Invocation
	if in.Lookup {
		// One read of the records for the chunk, not one per item: a
		// run's records grow with its items.
		invs, err := s.st.Invocations(ctx, s.r.id)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		byPath = make(map[string]*store.Invocation, len(invs))
		for _, inv := range invs {
			byPath[inv.Path] = inv
		}
	}
	var wg sync.WaitGroup
	for i, idx := range items {
		path := invocationPath("", s.r.step, in.Node, idx)
		if inv := byPath[path]; inv != nil && !(in.Resumed && inv.Status == store.InvocationFailed) && !(in.Raise != nil && pausedOnBudget(inv)) {
			res[i] = &InvokeResult{Path: path, Status: inv.Status, Kind: inv.ErrorKind, Error: inv.Error, Attempts: inv.Attempts, Recorded: true}
			continue
		}
		release := func() {}
		if gate != nil {
			var err error
			if release, err = gate(ctx); err != nil {
				res[i] = &InvokeResult{Path: path, Status: InvocationCancelled}
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			one := in
			one.Index, one.Lookup = idx, false
			res[i], errs[i] = s.Invoke(ctx, one)
			if errs[i] != nil || res[i].Status == store.InvocationFailed {
				cancel()
			}
		}()
	}
	wg.Wait()
	var first *InvokeResult
	for i := range items {
		switch {
		case errs[i] != nil:
			return nil, errs[i]
		case res[i].Status == store.InvocationFailed:
			return res[i], nil
		case res[i].Status == InvocationCancelled && first == nil:
			first = res[i]
		}
	}
	if first != nil {
		return first, nil
	}
	out := *res[0]
	for _, r := range res {
		out.Recorded = out.Recorded && r.Recorded
	}
	return &out, nil
}

// Gate bounds the invocations running at once outside the caps (a
// worker's own limit): it waits for room, and returns its release, or
// ctx's error.
type Gate func(ctx context.Context) (release func(), err error)
