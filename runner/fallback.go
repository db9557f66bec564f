package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lgx-run/lgx/nodes"
)

// fallbackChain is the providers an llm_call node falls back to, in order
// (SPEC §9.9): its provider's `fallbacks`, each followed by its own,
// depth first, every provider once. Nil when the provider is not a literal
// or has none.
func (g *Graph) fallbackChain(n *node) []string {
	field := nodes.CapabilitiesOf(n.typ).ProviderField
	if field == "" {
		return nil
	}
	main := "default"
	if lit, ok := n.withLiteral(field); ok {
		if s, ok := lit.(string); ok && s != "" {
			main = s
		}
	}
	byName := map[string][]string{}
	for _, p := range g.wf.Providers {
		for _, f := range p.Fallbacks {
			byName[p.Name] = append(byName[p.Name], f.Value)
		}
	}
	seen := map[string]bool{main: true}
	var out []string
	var walk func(string)
	walk = func(p string) {
		for _, f := range byName[p] {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
				walk(f)
			}
		}
	}
	walk(main)
	return out
}

// fallbackable reports whether a call that failed with err, after its
// retries, goes to the next provider: the failures retries are for
// (network, timeout, 429 and 5xx), not a bad request or a schema mismatch
// that another provider would meet too.
func fallbackable(err error) bool {
	var ne *nodes.Error
	if !errors.As(err, &ne) {
		return false
	}
	switch nodes.KindOf(err) {
	case nodes.KindNetwork, nodes.KindTimeout:
		return true
	case nodes.KindStatus, nodes.KindProvider:
		return ne.Status == 429 || ne.Status >= 500
	}
	return false
}

// fallbackCaps are cp with the provider's pool of fallback in place of
// the node's provider's pool: a fallback call runs under its own
// provider's pool and budget.
func (r *run) fallbackCaps(n *node, cp *caps, fallback string) *caps {
	var names []string
	for _, p := range n.spec.Pools {
		names = append(names, p.Value)
	}
	if p := r.g.providers[fallback]; p != nil && p.pool != "" {
		names = append(names, p.pool)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	fc := &caps{node: cp.node, none: cp.none, key: cp.key}
	for _, name := range names {
		if p, ok := r.lim.pools[name]; ok {
			fc.pools = append(fc.pools, p)
			if name == n.keyPool && cp.keyAt > 0 {
				fc.keyAt = len(fc.pools)
			}
		}
	}
	return fc
}

// withFallbacks runs the attempts of an llm_call and, when they fail with
// a fallbackable kind, the same request on each fallback provider in turn.
// Each switch is a `fallback` event; the result names the provider that
// answered (result.provider), and so does the invocation's record
// (LLMRecord), so a resume keeps it. Before switching, a provider whose
// last failure asked to retry after a shorter wait than its retry policy
// would wait next is waited for and asked once more (see retryBeforeSwitch).
func (c *call) withFallbacks(ctx context.Context, cp *caps) (any, int, error) {
	r, n := c.r, c.n
	res, attempts, err := r.attempts(ctx, c.ac, n, cp, &c.inv, c.onWait)
	if err == nil && len(n.fallbacks) == 0 {
		if r.rec != nil && c.llm.used { // an llm_call (it reserved tokens): record its provider
			c.provider = c.providerName()
		}
		return res, attempts, err
	}
	from := c.providerName()
	caps := cp
	for i := 0; ; i++ {
		if err == nil {
			c.provider = from
			return res, attempts, nil
		}
		if i == len(n.fallbacks) || ctx.Err() != nil || !fallbackable(err) {
			return res, attempts, err
		}
		if wait, ok := retryBeforeSwitch(n, attempts, err); ok {
			var a int
			res, a, err = c.retryOnce(ctx, caps, from, wait, err)
			attempts += a
			if err == nil || ctx.Err() != nil || !fallbackable(err) {
				continue
			}
		}
		fb := n.fallbacks[i]
		if r.sink != nil {
			ev := Event{Event: EventFallback, Node: n.name, Path: c.pathOf(), Step: c.step, Kind: string(nodes.KindOf(err)),
				Error: r.red.str(err.Error()), Message: fmt.Sprintf("provider %s failed after its retries; asking %s", from, fb)}
			if c.index >= 0 {
				i := c.index
				ev.Index = &i
			}
			r.emit(ev)
		}
		c.releaseHeld() // the failed provider's slots
		c.setProvider(fb)
		caps = r.fallbackCaps(n, cp, fb)
		var a int
		res, a, err = r.attempts(ctx, c.ac, n, caps, &c.inv, c.onWait)
		attempts += a
		from = fb
	}
}

// providerName is the provider the invocation asks ("" for a type
// without one).
func (c *call) providerName() string {
	field := nodes.CapabilitiesOf(c.n.typ).ProviderField
	if field == "" {
		return ""
	}
	if s, ok := c.inv.With[field].(string); ok && s != "" {
		return s
	}
	return "default"
}

// setProvider points the invocation's request at provider.
func (c *call) setProvider(provider string) {
	field := nodes.CapabilitiesOf(c.n.typ).ProviderField
	with := make(map[string]any, len(c.inv.With)+1)
	for k, v := range c.inv.With {
		with[k] = v
	}
	with[field] = provider
	c.inv.With = with
}

// retryBeforeSwitch reports whether a provider that failed with err after
// attempts tries is asked once more before the call falls back, and after
// what wait: when err is a 429 or 503 whose Retry-After is shorter than
// the switch delay — the backoff the node's retry policy would wait after
// that many attempts (without jitter). The server said it will answer
// soon, sooner than retrying would have waited, so that answer is
// worth the wait; a longer Retry-After switches at once.
func retryBeforeSwitch(n *node, attempts int, err error) (time.Duration, bool) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return 0, false // beyond retry.max_wait: surely longer
	}
	ne := asNodeErr(err)
	if ne == nil || ne.RetryAfter <= 0 || (ne.Status != 429 && ne.Status != 503) {
		return 0, false
	}
	if ne.RetryAfter >= nextBackoff(&n.retry, attempts) {
		return 0, false
	}
	return ne.RetryAfter, true
}

// fallbackSleep waits d unless ctx ends first; tests replace it.
var fallbackSleep = func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryOnce waits as the provider's Retry-After asked (a retry event,
// holding no slot) and makes one more attempt on it.
func (c *call) retryOnce(ctx context.Context, cp *caps, provider string, wait time.Duration, last error) (any, int, error) {
	r, n := c.r, c.n
	if r.sink != nil {
		ev := Event{Event: EventRetry, Node: n.name, Path: c.pathOf(), Step: c.step, Error: r.red.str(last.Error()),
			Kind: string(nodes.KindOf(last)), DelayMS: wait.Milliseconds(),
			Message: fmt.Sprintf("provider %s asked to retry after %s, sooner than its next backoff; trying it once more before falling back", provider, wait)}
		if c.index >= 0 {
			i := c.index
			ev.Index = &i
		}
		r.emit(ev)
	}
	c.releaseHeld()
	if err := fallbackSleep(ctx, wait); err != nil {
		return nil, 0, &nodes.Error{Kind: nodes.KindCancelled, Err: err}
	}
	once := *n
	once.retry.attempts = 1
	return r.attempts(ctx, c.ac, &once, cp, &c.inv, c.onWait)
}

// nextBackoff is the backoff of p before attempt+1 without jitter (its
// most), the delay a fallback switch is weighed against.
func nextBackoff(p *retryPolicy, attempt int) time.Duration {
	d := p.backoff
	for i := 1; i < attempt && d < p.maxBackoff; i++ {
		d *= 2
	}
	return min(d, p.maxBackoff, p.maxWait)
}
