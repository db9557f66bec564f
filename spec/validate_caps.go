package spec

import "strings"

// checkCaps checks what SPEC §9.9 adds to caps: keyed pool references
// (their key expressions are type-checked in the node's scope) and pools'
// per_key caps.
func (v *validator) checkCaps() {
	for _, p := range v.w.Pools {
		if pk := p.PerKey; pk != nil && pk.Concurrency == 0 && pk.Rate.Count == 0 {
			v.warnf(pk.Pos, CodeBadValue, "set concurrency, rate or both", "pool %s: per_key caps nothing", p.Name)
		}
	}
	for _, n := range v.w.Nodes {
		pk := n.PoolKey
		if pk == nil {
			continue
		}
		scope := ExprScope{}
		if n.ForEach != nil {
			scope.LoopVar = n.As
		}
		v.checkString(pk.Key, scope)
		if !strings.Contains(pk.Key.Value, "${{") {
			v.warnf(posOf(pk.Key), CodeBadValue, "use an expression, e.g. key: ${{ item.tenant }}",
				"node %s: pool %s: the key %q is constant, so every invocation shares one bucket", n.Name, pk.Pool.Value, pk.Key.Value)
		}
	}
	v.checkFallbacks()
	for _, t := range v.w.Tools {
		if t.Node != nil && t.Node.PoolKey != nil {
			v.errorf(t.Node.PoolKey.Pool.Pos, CodeBadValue, "write `pool: "+t.Node.PoolKey.Pool.Value+"`",
				"tool %s: a tool's node takes a pool by name; keyed pools are for workflow nodes", t.Name)
		}
	}
}

// checkFallbacks checks providers' `fallbacks`: each names a declared
// provider other than its own, and following them never comes back to a
// provider (a cycle is surely a mistake, though the runner would stop).
func (v *validator) checkFallbacks() {
	byName := map[string]*Provider{}
	for _, p := range v.w.Providers {
		byName[p.Name] = p
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	for _, p := range v.w.Providers {
		for _, f := range p.Fallbacks {
			if _, ok := byName[f.Value]; !ok {
				hint := didYouMean(f.Value, names)
				if hint == "" {
					hint = "declare it under `providers:`"
				}
				v.errorf(f.Pos, CodeUnknownProvider, hint, "provider %s: unknown fallback provider %q", p.Name, f.Value)
			} else if f.Value == p.Name {
				v.errorf(f.Pos, CodeBadValue, "remove it; retries already repeat the call", "provider %s falls back to itself", p.Name)
			}
		}
	}
	// A cycle: a path of fallbacks from p back to p, reported once at the
	// first provider (in file order) on it.
	reported := map[string]bool{}
	for _, p := range v.w.Providers {
		if reported[p.Name] {
			continue
		}
		path := fallbackCycle(byName, p.Name)
		if len(path) == 0 {
			continue
		}
		for _, n := range path {
			reported[n] = true
		}
		v.errorf(p.Pos, CodeBadValue, "drop one of the fallbacks", "provider fallbacks form a cycle: %s", strings.Join(append(path, p.Name), " → "))
	}
}

// fallbackCycle returns a path of fallbacks from start back to start (its
// providers from start on), or nil. Self-references are reported apart.
func fallbackCycle(byName map[string]*Provider, start string) []string {
	var path []string
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		path = append(path, n)
		seen[n] = true
		if p := byName[n]; p != nil {
			for _, f := range p.Fallbacks {
				if f.Value == start && n != start {
					return true
				}
				if !seen[f.Value] && walk(f.Value) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		return false
	}
	if walk(start) {
		return path
	}
	return nil
}
