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
	for _, t := range v.w.Tools {
		if t.Node != nil && t.Node.PoolKey != nil {
			v.errorf(t.Node.PoolKey.Pool.Pos, CodeBadValue, "write `pool: "+t.Node.PoolKey.Pool.Value+"`",
				"tool %s: a tool's node takes a pool by name; keyed pools are for workflow nodes", t.Name)
		}
	}
}
