package spec

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/nodes/llm"
)

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
		} else if p := poolNamed(v.w.Pools, pk.Pool.Value); p != nil && p.PerKey == nil {
			// Keys are bounded by the pool's total (SPEC §9.9); without
			// per_key a key's bucket has no cap of its own.
			v.warnf(pk.Pool.Pos, CodeBadValue, "add per_key: {concurrency: N} to pool "+p.Name+" to cap each key",
				"node %s: pool %s has no per_key, so its key caps nothing: every key shares the pool's caps", n.Name, p.Name)
		}
	}
	v.checkFallbacks()
	v.checkBudgetPrices()
	v.checkCapabilities()
	for _, t := range v.w.Tools {
		if t.Node != nil && t.Node.PoolKey != nil {
			v.errorf(t.Node.PoolKey.Pool.Pos, CodeBadValue, "write `pool: "+t.Node.PoolKey.Pool.Value+"`",
				"tool %s: a tool's node takes a pool by name; keyed pools are for workflow nodes", t.Name)
		}
	}
}

// poolNamed returns the pool of pools named name, or nil.
func poolNamed(pools []*Pool, name string) *Pool {
	for _, p := range pools {
		if p.Name == name {
			return p
		}
	}
	return nil
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

// providerField is the `with` field in which n's type names the provider
// it calls (nodes.Capabilities.ProviderField), or "" when the type calls
// none (or is unknown).
func providerField(n *Node) string {
	t, ok := nodes.Lookup(n.Type)
	if !ok {
		return ""
	}
	return nodes.CapabilitiesOf(t).ProviderField
}

// callProvider is the provider a node names in its provider field: the
// literal when it is one, else "default"; "" when it is an expression.
func callProvider(n *Node, field string) string {
	for _, p := range withPairs(n.With) {
		if resolveAlias(p.key).Value != field {
			continue
		}
		val := resolveAlias(p.value)
		if val.Kind != yaml.ScalarNode || isExprString(val) {
			return ""
		}
		if isNull(val) || val.Value == "" {
			return "default"
		}
		return val.Value
	}
	return "default"
}

// withGiven is the value of a node's `with.NAME`, or nil.
func withGiven(n *Node, name string) *yaml.Node {
	for _, p := range withPairs(n.With) {
		if resolveAlias(p.key).Value == name {
			return resolveAlias(p.value)
		}
	}
	return nil
}

// fallbackOrder is the providers a call to main may reach: main, then its
// fallbacks depth first, each once (the runner's order).
func fallbackOrder(byName map[string]*Provider, main string) []string {
	out := []string{main}
	seen := map[string]bool{main: true}
	var walk func(string)
	walk = func(name string) {
		p := byName[name]
		if p == nil {
			return
		}
		for _, f := range p.Fallbacks {
			if !seen[f.Value] {
				seen[f.Value] = true
				out = append(out, f.Value)
				walk(f.Value)
			}
		}
	}
	walk(main)
	return out
}

// checkBudgetPrices reports a money budget (budget.usd) that covers a
// provider without a price: its calls could not be priced, so the budget
// would not hold. The run's budget covers every provider; a pool's, the
// providers that take the pool and those (fallbacks included) of the
// llm_call nodes naming it; a provider's, that provider.
func (v *validator) checkBudgetPrices() {
	byName := map[string]*Provider{}
	for _, p := range v.w.Providers {
		byName[p.Name] = p
	}
	check := func(b *Budget, who string, providers []string) {
		if b == nil || b.USD == 0 {
			return
		}
		for _, name := range providers {
			if p := byName[name]; p != nil && p.Price == nil {
				v.errorf(b.USDPos, CodeBadValue, fmt.Sprintf("add `price: {input_per_mtok: …, output_per_mtok: …}` to provider %s", name),
					"%s: budget.usd covers provider %s, which has no price", who, name)
			}
		}
	}
	var all []string
	for _, p := range v.w.Providers {
		all = append(all, p.Name)
	}
	check(v.w.Config.Budget, "config", all)
	for _, pl := range v.w.Pools {
		if pl.Budget == nil || pl.Budget.USD == 0 {
			continue
		}
		var in []string
		add := func(names ...string) {
			for _, n := range names {
				if !slices.Contains(in, n) {
					in = append(in, n)
				}
			}
		}
		for _, p := range v.w.Providers {
			if p.Pool.Value == pl.Name {
				add(p.Name)
			}
		}
		for _, c := range v.providerCalls() {
			n := c.node
			if !slices.ContainsFunc(n.Pools, func(x Name) bool { return x.Value == pl.Name }) {
				continue
			}
			if main := callProvider(n, c.field); main != "" {
				add(fallbackOrder(byName, main)...)
			} else {
				add(all...) // an expression may name any provider
			}
		}
		check(pl.Budget, "pool "+pl.Name, in)
	}
	for _, p := range v.w.Providers {
		check(p.Budget, "provider "+p.Name, []string{p.Name})
	}
}

// providerCall is a node whose type calls a provider
// (nodes.Capabilities.ProviderField), the field that names it, and how
// diagnostics name the node ("node ask", "tool summarize").
type providerCall struct {
	node  *Node
	field string
	who   string
}

// providerCalls is every node that calls a provider: those of `nodes:`,
// then the nodes of declared tools, which call providers just the same
// (when a model calls the tool), so the capability and price checks must
// see them too.
func (v *validator) providerCalls() []providerCall {
	var out []providerCall
	for _, n := range v.w.Nodes {
		if f := providerField(n); f != "" {
			out = append(out, providerCall{n, f, "node " + n.Name})
		}
	}
	for _, t := range v.w.Tools {
		if t.Node == nil {
			continue
		}
		if f := providerField(t.Node); f != "" {
			out = append(out, providerCall{t.Node, f, "tool " + t.Name})
		}
	}
	return out
}

// Provider capabilities a call may need (a provider's `capabilities:`),
// as the catalog declares them.
const (
	CapTools            = nodes.ProviderCapTools
	CapStructuredOutput = nodes.ProviderCapStructuredOutput
)

// providerKinds are the kinds a provider may be, as the LLM adapters
// declare them; providerKindEnum is the same as the format table's Enum.
var (
	providerKinds    = llm.Kinds
	providerKindEnum = enum(providerKinds)
)

// providerCapEnum is every provider capability, as the format table's
// Enum of a provider's `capabilities:`.
var providerCapEnum = enum(nodes.ProviderCapabilities)

// checkCapabilities warns when a node gives a field that needs a provider
// capability (nodes.Capabilities.ProviderNeeds: llm_call's tools,
// response_format) that its provider, or a fallback it may reach, declares
// it lacks: the call would fail there, or, on a fallback, only when the
// primary is already down.
func (v *validator) checkCapabilities() {
	byName := map[string]*Provider{}
	for _, p := range v.w.Providers {
		byName[p.Name] = p
	}
	for _, call := range v.providerCalls() {
		n := call.node
		main := callProvider(n, call.field)
		if main == "" {
			continue
		}
		t, _ := nodes.Lookup(n.Type) // providerCalls holds known types only
		var uses []nodes.ProviderNeed
		for _, need := range nodes.CapabilitiesOf(t).ProviderNeeds {
			if withGiven(n, need.Field) != nil {
				uses = append(uses, need)
			}
		}
		if len(uses) == 0 {
			continue
		}
		for i, name := range fallbackOrder(byName, main) {
			p := byName[name]
			if p == nil || p.Capabilities == nil {
				continue
			}
			for _, need := range uses {
				c := need.Capability
				if slices.Contains(p.Capabilities, c) {
					continue
				}
				field := "with." + need.Field
				pos := posOf(withGiven(n, need.Field))
				if i == 0 {
					v.warnf(pos, CodeCapability, fmt.Sprintf("use a provider with %s, or add %s to provider %s's capabilities", c, c, name),
						"%s: %s needs %s, which provider %s does not declare (capabilities: [%s])", call.who, field, c, name, strings.Join(p.Capabilities, ", "))
				} else {
					v.warnf(pos, CodeCapability, fmt.Sprintf("add %s to provider %s's capabilities if it has it, or drop it from the fallbacks of %s", c, name, main),
						"%s: %s needs %s, which fallback provider %s (of %s) does not declare (capabilities: [%s]); a call that falls back to it would fail",
						call.who, field, c, name, main, strings.Join(p.Capabilities, ", "))
				}
			}
		}
	}
}
