package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
// answered (result.provider), so the record, and a resume, keep it.
func (c *call) withFallbacks(ctx context.Context, cp *caps) (any, int, error) {
	r, n := c.r, c.n
	res, attempts, err := r.attempts(ctx, c.ac, n, cp, &c.inv, c.onWait)
	if err == nil || len(n.fallbacks) == 0 {
		return res, attempts, err
	}
	field := nodes.CapabilitiesOf(n.typ).ProviderField
	from := "default"
	if s, ok := c.inv.With[field].(string); ok && s != "" {
		from = s
	}
	for _, fb := range n.fallbacks {
		if ctx.Err() != nil || !fallbackable(err) {
			break
		}
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
		with := make(map[string]any, len(c.inv.With))
		for k, v := range c.inv.With {
			with[k] = v
		}
		with[field] = fb
		c.inv.With = with
		var a int
		res, a, err = r.attempts(ctx, c.ac, n, r.fallbackCaps(n, cp, fb), &c.inv, c.onWait)
		attempts += a
		if err == nil {
			return res, attempts, nil
		}
		from = fb
	}
	return res, attempts, err
}
