package spec

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
)

// decoder turns the YAML node tree into a Workflow, collecting diagnostics.
type decoder struct {
	w     *Workflow
	diags Diagnostics
	// synthetic are the values this decoder made up, for w.synthetic:
	// kept apart so that decoders can run at once (nodes).
	synthetic []*yaml.Node
}

func (d *decoder) errorf(p Pos, code, hint, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{File: d.w.File, Pos: p, Severity: SeverityError,
		Code: code, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (d *decoder) warnf(p Pos, code, hint, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{File: d.w.File, Pos: p, Severity: SeverityWarning,
		Code: code, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// Keys each construct accepts, from the format table (fields.go), so that a
// key is declared once for the loader, the schema and the docs.
var (
	workflowKeys = blockKeys(BlockWorkflow)
	configKeys   = blockKeys(BlockConfig)
	retryKeys    = blockKeys(BlockRetry)
	poolKeys     = blockKeys(BlockPool)
	providerKeys = blockKeys(BlockProvider)
	stateKeys    = blockKeys(BlockStateKey)
	toolKeys     = blockKeys(BlockTool)
	nodeKeys     = blockKeys(BlockNode)
	toolNodeKeys = blockKeys(BlockToolNode)
	edgeKeys     = blockKeys(BlockEdge)
	caseKeys     = blockKeys(BlockCase)
	mcpKeys      = blockKeys(BlockMCP)
	perKeyKeys   = blockKeys(BlockPerKey)
	poolRefKeys  = blockKeys(BlockPoolRef)
	budgetKeys   = blockKeys(BlockBudget)
	priceKeys    = blockKeys(BlockPrice)
)

func blockKeys(name string) []string {
	b, ok := BlockByName(name)
	if !ok {
		panic("spec: no block " + name + " in the format table")
	}
	return b.FieldNames()
}

// keyMap is a YAML mapping whose keys have been checked against the keys
// its construct accepts.
//
// The entries are a slice, searched linearly: a construct accepts a few
// dozen keys at most, each at most once, and two maps per construct were a
// tenth of loading a 10,000-node workflow.
type keyMap struct {
	node    *yaml.Node
	entries []keyEntry
}

type keyEntry struct {
	name     string
	key, val *yaml.Node
}

func (o *keyMap) entry(key string) *keyEntry {
	for i := range o.entries {
		if o.entries[i].name == key {
			return &o.entries[i]
		}
	}
	return nil
}

// get returns the value of key, or nil when it is absent.
func (o *keyMap) get(key string) *yaml.Node {
	if o == nil {
		return nil
	}
	if e := o.entry(key); e != nil {
		return resolveAlias(e.val)
	}
	return nil
}

// keyPos is the position of key (or of the mapping when key is absent).
func (o *keyMap) keyPos(key string) Pos {
	if o == nil {
		return Pos{}
	}
	if e := o.entry(key); e != nil {
		return posOf(e.key)
	}
	return posOf(o.node)
}

// pairs returns a mapping's entries (aliases and merge keys resolved),
// reporting a non-mapping value, non-string keys and duplicate keys. A null
// value is an empty mapping.
func (d *decoder) pairs(n *yaml.Node, what string) []pair {
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be a mapping, not %s", what, describe(n))
		return nil
	}
	budget := MaxNodes
	ps, err := mappingPairs(n, 0, &budget)
	if err != nil {
		d.errorf(posOf(n), CodeBadValue, "", "%s: %v", what, err)
		return nil
	}
	// Most mappings have a handful of keys: comparing with the ones kept
	// so far is cheaper than a map, which only large ones (`nodes:`) get.
	var seen map[string]*yaml.Node
	if len(ps) > smallMapping {
		seen = make(map[string]*yaml.Node, len(ps))
	}
	out := ps[:0] // mappingPairs returns a fresh slice: filter it in place
	for _, p := range ps {
		k := resolveAlias(p.key)
		if k.Kind != yaml.ScalarNode {
			d.errorf(posOf(p.key), CodeBadValue, "", "a key of %s must be a string, not %s", what, describe(k))
			continue
		}
		if prev := firstKey(seen, out, k.Value); prev != nil {
			d.errorf(posOf(p.key), CodeDuplicate, "", "%q is defined twice in %s (first at line %d)", k.Value, what, prev.Line)
			continue
		}
		if seen != nil {
			seen[k.Value] = p.key
		}
		out = append(out, p)
	}
	return out
}

// smallMapping is the size up to which pairs finds duplicate keys by
// comparison rather than with a map.
const smallMapping = 16

// firstKey returns the key node named name among kept, looked up in seen
// when there is one.
func firstKey(seen map[string]*yaml.Node, kept []pair, name string) *yaml.Node {
	if seen != nil {
		return seen[name]
	}
	for _, p := range kept {
		if resolveAlias(p.key).Value == name {
			return p.key
		}
	}
	return nil
}

// object decodes a mapping with a fixed set of keys; unknown keys are
// reported with a suggestion. A nil or null node gives an empty object.
func (d *decoder) object(n *yaml.Node, what string, known []string) *keyMap {
	ps := d.pairs(n, what)
	o := &keyMap{node: resolveAlias(n), entries: make([]keyEntry, 0, len(ps))}
	for _, p := range ps {
		k := resolveAlias(p.key).Value
		if !contains(known, k) {
			hint := didYouMean(k, known)
			if hint == "" {
				hint = "keys here: " + strings.Join(known, ", ")
			}
			d.errorf(posOf(p.key), CodeUnknownKey, hint, "unknown key %q in %s", k, what)
			continue
		}
		o.entries = append(o.entries, keyEntry{k, p.key, p.value})
	}
	return o
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a node for error messages.
func describe(n *yaml.Node) string {
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if _, err := scalarValue(n); err != nil {
			// An explicit tag the text does not fit (`!!int abc`).
			return strconv.Quote(n.Value) + ", which its tag " + n.ShortTag() + " cannot read"
		}
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int":
			return "an integer (" + n.Value + ")"
		case "!!float":
			return "a number (" + n.Value + ")"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		}
		return strconv.Quote(n.Value)
	}
	return "a YAML node"
}

// str decodes a scalar as text; ok is false (and an error reported) for
// mappings and lists.
func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	n = resolveAlias(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be a string, not %s", what, describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// name decodes a scalar as a Name.
func (d *decoder) name(n *yaml.Node, what string) (Name, bool) {
	s, ok := d.str(n, what)
	if !ok {
		return Name{}, false
	}
	if s == "" {
		d.errorf(posOf(n), CodeBadValue, "", "%s must not be empty", what)
		return Name{}, false
	}
	return Name{Value: s, Pos: posOf(n)}, true
}

// names decodes one name or a list of names.
func (d *decoder) names(n *yaml.Node, what string) []Name {
	n = resolveAlias(n)
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode {
		out := make([]Name, 0, len(n.Content))
		for _, c := range n.Content {
			if nm, ok := d.name(c, what); ok {
				out = append(out, nm)
			}
		}
		if len(out) == 0 && len(n.Content) == 0 {
			d.errorf(posOf(n), CodeBadValue, "", "%s must not be an empty list", what)
		}
		return out
	}
	if nm, ok := d.name(n, what); ok {
		return []Name{nm}
	}
	return nil
}

// integer decodes an integer of at least min.
func (d *decoder) integer(n *yaml.Node, what string, min int) (int, bool) {
	n = resolveAlias(n)
	if n == nil {
		return 0, false
	}
	var i int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be an integer, not %s", what, describe(n))
		return 0, false
	}
	if i < min {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be at least %d, not %d", what, min, i)
		return 0, false
	}
	return i, true
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, what string) (bool, bool) {
	n = resolveAlias(n)
	if n == nil {
		return false, false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be true or false, not %s", what, describe(n))
		return false, false
	}
	return b, true
}

// duration decodes a Go-style duration.
func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = resolveAlias(n)
	if n == nil {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(posOf(n), CodeBadDuration, "write a number and a unit, e.g. 500ms, 10s, 2m", "%s must be a duration, not %s", what, describe(n))
		return 0, false
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		hint := "write a number and a unit, e.g. 500ms, 10s, 2m"
		if _, e := strconv.ParseFloat(n.Value, 64); e == nil {
			hint = "add a unit: " + n.Value + "s"
		}
		d.errorf(posOf(n), CodeBadDuration, hint, "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

func defaultRetry() RetryPolicy {
	return RetryPolicy{
		Attempts:   DefaultAttempts,
		Backoff:    DefaultBackoff,
		MaxBackoff: DefaultMaxBackoff,
		MaxWait:    DefaultMaxWait,
		On:         append([]string(nil), DefaultRetryOn...),
	}
}

func defaultConfig() Config {
	return Config{
		Concurrency:    DefaultConcurrency,
		RecursionLimit: DefaultRecursionLimit,
		NodeTimeout:    DefaultNodeTimeout,
		Retry:          defaultRetry(),
	}
}

// workflow decodes the top-level mapping. Sections are decoded in a fixed
// order (config before nodes, whose retry policies inherit from it),
// whatever their order in the file.
func (d *decoder) workflow(n *yaml.Node) {
	w := d.w
	if resolveAlias(n).Kind != yaml.MappingNode {
		d.errorf(posOf(n), CodeBadValue, "start with `lgx: 1`, `name:` and `nodes:`", "a workflow file must be a mapping, not %s", describe(n))
		return
	}
	o := d.object(n, "the workflow", workflowKeys)
	top := Pos{Line: 1, Col: 1}

	if v := o.get("lgx"); v == nil {
		d.errorf(top, CodeMissingKey, "add `lgx: 1` as the first line", "missing required key `lgx` (the spec version)")
	} else if ver, ok := d.integer(v, "lgx", 0); ok {
		w.Version = ver
		if ver != 1 {
			d.errorf(posOf(v), CodeBadVersion, "write `lgx: 1`", "unsupported spec version lgx: %d; only 1 exists", ver)
		}
	}
	if v := o.get("name"); v == nil {
		d.errorf(top, CodeMissingKey, "add e.g. `name: my-workflow`", "missing required key `name`")
	} else if s, ok := d.str(v, "name"); ok {
		w.Name, w.NamePos = s, posOf(v)
	}
	if v := o.get("description"); v != nil {
		w.Description, _ = d.str(v, "description")
	}
	if v := o.get("secrets"); v != nil {
		if resolveAlias(v).Kind != yaml.SequenceNode && !isNull(resolveAlias(v)) {
			d.errorf(posOf(v), CodeBadValue, "write e.g. `secrets: [OPENAI_API_KEY]`", "secrets must be a list of environment variable names, not %s", describe(v))
		} else if !isNull(resolveAlias(v)) {
			w.Secrets = d.names(v, "a secret")
		}
	}
	if v := o.get("config"); v != nil {
		d.config(v)
	}
	for _, p := range d.pairs(o.get("pools"), "pools") {
		d.pool(p)
	}
	for _, p := range d.pairs(o.get("providers"), "providers") {
		d.provider(p)
	}
	for _, p := range d.pairs(o.get("state"), "state") {
		d.stateKey(p)
	}
	for _, p := range d.pairs(o.get("tools"), "tools") {
		d.tool(p)
	}
	for _, p := range d.pairs(o.get("mcp"), "mcp") {
		d.mcpServer(p)
	}
	if o.get("nodes") == nil {
		d.warnf(top, CodeMissingKey, "add `nodes:` and `edges:`", "the workflow has no nodes: a run does nothing")
	}
	w.Nodes = d.nodes(d.pairs(o.get("nodes"), "nodes"))
	if v := o.get("edges"); v != nil {
		d.edges(v)
	}
	if v := o.get("output"); v != nil {
		w.OutputPos = posOf(v)
		w.Output = d.names(v, "an output key")
		if w.Output == nil {
			w.Output = []Name{}
		}
	}
}

func (d *decoder) config(n *yaml.Node) {
	c := &d.w.Config
	c.Pos = posOf(n)
	o := d.object(n, "config", configKeys)
	if v := o.get("concurrency"); v != nil {
		if i, ok := d.integer(v, "config.concurrency", 1); ok {
			c.Concurrency = i
		}
	}
	if v := o.get("recursion_limit"); v != nil {
		if i, ok := d.integer(v, "config.recursion_limit", 1); ok {
			c.RecursionLimit = i
		}
	}
	if v := o.get("timeout"); v != nil {
		if t, ok := d.duration(v, "config.timeout"); ok {
			c.Timeout = t
		}
	}
	if v := o.get("node_timeout"); v != nil {
		if t, ok := d.duration(v, "config.node_timeout"); ok {
			c.NodeTimeout = t
		}
	}
	if v := o.get("retry"); v != nil {
		c.Retry = d.retry(v, "config.retry", defaultRetry())
	}
	if v := o.get("max_value_bytes"); v != nil {
		if n, ok := d.byteSize(v, "config.max_value_bytes"); ok {
			c.MaxValueBytes = n
		}
	}
	if v := o.get("budget"); v != nil {
		c.Budget = d.budget(v, "config.budget")
	}
}

// budget decodes a token and/or money budget.
func (d *decoder) budget(n *yaml.Node, what string) *Budget {
	b := &Budget{Pos: posOf(n)}
	o := d.object(n, what, budgetKeys)
	tokens, usd := o.get("tokens"), o.get("usd")
	if tokens == nil && usd == nil {
		d.errorf(posOf(n), CodeMissingKey, "add e.g. `tokens: 200000` or `usd: 5`", "%s: give `tokens`, `usd` or both", what)
	}
	if tokens != nil {
		if i, ok := d.integer(tokens, what+": tokens", 1); ok {
			b.Tokens = int64(i)
		}
	}
	if usd != nil {
		if f, ok := d.positiveNumber(usd, what+": usd"); ok {
			b.USD, b.USDPos = f, posOf(usd)
		}
	}
	if v := o.get("on_exhausted"); v != nil {
		if s, ok := d.str(v, what+": on_exhausted"); ok {
			modes := []string{BudgetFail, BudgetWait, BudgetInterrupt}
			if !slices.Contains(modes, s) {
				d.errorf(posOf(v), CodeBadValue, didYouMean(s, modes), "%s: on_exhausted must be fail, wait or interrupt, not %q", what, s)
			} else {
				b.OnExhausted = s
			}
		}
	}
	return b
}

// price decodes a provider's price per million tokens.
func (d *decoder) price(n *yaml.Node, what string) *Price {
	p := &Price{Pos: posOf(n)}
	o := d.object(n, what, priceKeys)
	for _, f := range []struct {
		key string
		to  *float64
	}{{"input_per_mtok", &p.InputPerMTok}, {"output_per_mtok", &p.OutputPerMTok}} {
		v := o.get(f.key)
		if v == nil {
			d.errorf(posOf(n), CodeMissingKey, "add e.g. `"+f.key+": 0.15` (US dollars per million tokens)", "%s: missing required key `%s`", what, f.key)
			continue
		}
		if x, ok := d.number(v, what+": "+f.key); ok {
			if x < 0 {
				d.errorf(posOf(v), CodeBadValue, "", "%s: %s must not be negative, not %v", what, f.key, x)
				continue
			}
			*f.to = x
		}
	}
	return p
}

// number decodes a finite integer or float.
func (d *decoder) number(n *yaml.Node, what string) (float64, bool) {
	n = resolveAlias(n)
	if n == nil {
		return 0, false
	}
	var f float64
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be a number, not %s", what, describe(n))
		return 0, false
	}
	return f, true
}

// positiveNumber decodes a number above zero.
func (d *decoder) positiveNumber(n *yaml.Node, what string) (float64, bool) {
	f, ok := d.number(n, what)
	if ok && f <= 0 {
		d.errorf(posOf(n), CodeBadValue, "", "%s must be above 0, not %v", what, f)
		return 0, false
	}
	return f, ok
}

// byteSize decodes a positive byte size: an integer or a string like
// "512KB" or "16MiB" (nodes.ParseByteSize).
func (d *decoder) byteSize(n *yaml.Node, what string) (int64, bool) {
	n = resolveAlias(n)
	if n == nil {
		return 0, false
	}
	hint := "write a number of bytes, or one with a unit: 512KB, 16MiB"
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(posOf(n), CodeBadValue, hint, "%s must be a byte size, not %s", what, describe(n))
		return 0, false
	}
	size, err := nodes.ParseByteSize(n.Value)
	if err != nil {
		d.errorf(posOf(n), CodeBadValue, hint, "%s: %v", what, err)
		return 0, false
	}
	if size < 1 {
		d.errorf(posOf(n), CodeBadValue, hint, "%s must be at least 1 byte", what)
		return 0, false
	}
	return size, true
}

// retryKinds are the failure kinds `retry.on` may name, besides statuses,
// as the catalog declares them (nodes.RetryKinds).
var retryKinds = func() []string {
	out := make([]string, len(nodes.RetryKinds))
	for i, k := range nodes.RetryKinds {
		out[i] = string(k)
	}
	return out
}()

// retryKindList is retryKinds as the reference lists them.
var retryKindList = strings.Join(retryKinds, ", ")

// retry decodes a retry policy; fields not given keep base's values.
func (d *decoder) retry(n *yaml.Node, what string, base RetryPolicy) RetryPolicy {
	r := base
	r.On = append([]string(nil), base.On...)
	r.Pos = posOf(n)
	o := d.object(n, what, retryKeys)
	if v := o.get("attempts"); v != nil {
		if i, ok := d.integer(v, what+".attempts", 1); ok {
			r.Attempts = i
		}
	}
	if v := o.get("backoff"); v != nil {
		if t, ok := d.duration(v, what+".backoff"); ok {
			r.Backoff = t
		}
	}
	if v := o.get("max_backoff"); v != nil {
		if t, ok := d.duration(v, what+".max_backoff"); ok {
			r.MaxBackoff = t
		}
	}
	if v := o.get("max_wait"); v != nil {
		if t, ok := d.duration(v, what+".max_wait"); ok {
			r.MaxWait = t
		}
	}
	if v := o.get("on"); v != nil {
		r.On = []string{}
		for _, nm := range d.names(v, what+".on entry") {
			if !validRetryOn(nm.Value) {
				d.errorf(nm.Pos, CodeBadRetryOn, retryOnHint(nm.Value), "%s: %q is neither a failure kind nor a status (like 429 or 5xx)", what+".on", nm.Value)
				continue
			}
			r.On = append(r.On, nm.Value)
		}
	}
	return r
}

func validRetryOn(s string) bool {
	if contains(retryKinds, s) {
		return true
	}
	if len(s) != 3 || s[0] < '1' || s[0] > '5' {
		return false
	}
	if s[1:] == "xx" {
		return true
	}
	_, err := strconv.Atoi(s)
	return err == nil
}

func retryOnHint(s string) string {
	if h := didYouMean(s, retryKinds); h != "" {
		return h
	}
	return "use a kind (" + strings.Join(retryKinds, ", ") + "), a status (429) or a class (5xx)"
}

func (d *decoder) pool(p pair) {
	name := resolveAlias(p.key).Value
	pl := &Pool{Name: name, Pos: posOf(p.key)}
	what := "pool " + name
	o := d.object(p.value, what, poolKeys)
	pl.Concurrency, pl.Rate, pl.Burst = d.caps(o, what, "60/min")
	pl.capsWritten = o.get("concurrency") != nil || o.get("rate") != nil
	if v := o.get("per_key"); v != nil {
		pl.PerKey = d.poolLimits(v, what+": per_key")
	}
	if v := o.get("budget"); v != nil {
		pl.Budget = d.budget(v, what+": budget")
	}
	d.w.Pools = append(d.w.Pools, pl)
}

// poolLimits decodes a pool's `per_key:` caps.
func (d *decoder) poolLimits(n *yaml.Node, what string) *PoolLimits {
	pl := &PoolLimits{Pos: posOf(n)}
	o := d.object(n, what, perKeyKeys)
	pl.Concurrency, pl.Rate, pl.Burst = d.caps(o, what, "2/s")
	return pl
}

// caps decodes the concurrency, rate and burst of a pool or of its per_key
// block; burst defaults to max(1, concurrency).
func (d *decoder) caps(o *keyMap, what, rateExample string) (concurrency int, rate Rate, burst int) {
	if v := o.get("concurrency"); v != nil {
		concurrency, _ = d.integer(v, what+": concurrency", 1)
	}
	if v := o.get("rate"); v != nil {
		if s, ok := d.str(v, what+": rate"); ok {
			r, err := ParseRate(s)
			if err != nil {
				d.errorf(posOf(v), CodeBadRate, "write N/s, N/min or N/h, e.g. "+rateExample, "%s: %v", what, err)
			}
			rate = r
		}
	}
	burst = max(1, concurrency)
	if v := o.get("burst"); v != nil {
		if b, ok := d.integer(v, what+": burst", 1); ok {
			burst = b
		}
	}
	return concurrency, rate, burst
}

// nodePools decodes a node's `pool:`: a name, a keyed pool {name: P, key:
// EXPR}, or a list of those with at most one keyed pool.
func (d *decoder) nodePools(nd *Node, v *yaml.Node, what string) {
	v = resolveAlias(v)
	if v == nil {
		return
	}
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
		if len(items) == 0 {
			d.errorf(posOf(v), CodeBadValue, "", "%s must not be an empty list", what)
		}
	}
	for _, it := range items {
		it = resolveAlias(it)
		if it.Kind != yaml.MappingNode {
			if nm, ok := d.name(it, what); ok {
				nd.Pools = append(nd.Pools, nm)
			}
			continue
		}
		if pk, ok := d.poolKey(it, what); ok {
			nd.Pools = append(nd.Pools, pk.Pool)
			if nd.PoolKey != nil {
				d.errorf(posOf(it), CodeBadValue, "key one pool per node; take the others by name", "%s: a node takes at most one pool with a key", what)
				continue
			}
			nd.PoolKey = pk
		}
	}
}

// poolKey decodes a keyed pool reference {name: P, key: EXPR}.
func (d *decoder) poolKey(v *yaml.Node, what string) (*PoolKey, bool) {
	o := d.object(v, what, poolRefKeys)
	nm := o.get("name")
	if nm == nil {
		d.errorf(posOf(v), CodeMissingKey, "add `name: POOL`", "%s: missing required key `name`", what)
		return nil, false
	}
	name, ok := d.name(nm, what+": name")
	if !ok {
		return nil, false
	}
	k := o.get("key")
	if k == nil {
		d.errorf(posOf(v), CodeMissingKey, "add e.g. `key: ${{ item.tenant }}`, or write `pool: "+name.Value+"` for an unkeyed pool", "%s: missing required key `key`", what)
		return nil, false
	}
	if _, ok := d.str(k, what+": key"); !ok {
		return nil, false
	}
	return &PoolKey{Pool: name, Key: resolveAlias(k)}, true
}

func (d *decoder) provider(p pair) {
	name := resolveAlias(p.key).Value
	pr := &Provider{Name: name, Pos: posOf(p.key), Node: resolveAlias(p.value)}
	what := "provider " + name
	o := d.object(p.value, what, providerKeys)
	if v := o.get("kind"); v == nil {
		d.errorf(posOf(p.key), CodeMissingKey, "add `kind: openai` or `kind: anthropic`", "%s: missing required key `kind`", what)
	} else if s, ok := d.str(v, what+": kind"); ok {
		pr.Kind, pr.KindPos = s, posOf(v)
	}
	if v := o.get("model"); v != nil {
		pr.Model, _ = d.str(v, what+": model")
	}
	if v := o.get("base_url"); v != nil {
		pr.BaseURL, _ = d.str(v, what+": base_url")
	}
	if v := o.get("api_key"); v != nil {
		pr.APIKey, _ = d.str(v, what+": api_key")
	}
	if v := o.get("pool"); v != nil {
		pr.Pool, _ = d.name(v, what+": pool")
	}
	if v := o.get("budget"); v != nil {
		pr.Budget = d.budget(v, what+": budget")
	}
	if v := o.get("price"); v != nil {
		pr.Price = d.price(v, what+": price")
	}
	if v := o.get("capabilities"); v != nil {
		pr.Capabilities = []string{}
		var list []Name
		if vv := resolveAlias(v); vv.Kind != yaml.SequenceNode || len(vv.Content) > 0 {
			list = d.names(v, what+": capabilities") // [] declares none
		}
		for _, c := range list {
			caps := nodes.ProviderCapabilities
			if !slices.Contains(caps, c.Value) {
				d.errorf(c.Pos, CodeBadValue, didYouMean(c.Value, caps), "%s: capabilities: unknown capability %q (want %s)", what, c.Value, strings.Join(caps, " or "))
				continue
			}
			pr.Capabilities = append(pr.Capabilities, c.Value)
		}
	}
	if v := o.get("fallbacks"); v != nil {
		pr.Fallbacks = d.names(v, what+": fallbacks")
	}
	d.w.Providers = append(d.w.Providers, pr)
}

func (d *decoder) stateKey(p pair) {
	name := resolveAlias(p.key).Value
	k := &StateKey{Name: name, Pos: posOf(p.key)}
	v := resolveAlias(p.value)
	if v.Kind == yaml.ScalarNode && !isNull(v) {
		// Shorthand: `score: number`.
		k.Type, k.TypePos = v.Value, posOf(v)
	} else {
		what := "state key " + name
		o := d.object(v, what, stateKeys)
		if t := o.get("type"); t == nil {
			d.errorf(posOf(p.key), CodeMissingKey, "add e.g. `type: string` (or `type: any`)", "%s: missing required key `type`", what)
		} else if s, ok := d.str(t, what+": type"); ok {
			k.Type, k.TypePos = s, posOf(t)
		}
		if r := o.get("reducer"); r != nil {
			if s, ok := d.str(r, what+": reducer"); ok {
				k.Reducer, k.ReducerPos = s, posOf(r)
			}
		}
		if dv := o.get("default"); dv != nil {
			val, err := DecodeValue(dv)
			if err != nil {
				d.errorf(posOf(dv), CodeBadValue, "", "%s: default: %v", what, err)
			}
			k.Default, k.HasDefault, k.DefaultPos = val, true, posOf(dv)
		}
		if r := o.get("required"); r != nil {
			k.Required, _ = d.boolean(r, what+": required")
		}
		if s := o.get("description"); s != nil {
			k.Description, _ = d.str(s, what+": description")
		}
	}
	if k.Reducer == "" {
		if k.Type == TypeMessages {
			k.Reducer = ReducerMessages
		} else {
			k.Reducer = ReducerReplace
		}
	}
	d.w.State = append(d.w.State, k)
}

func (d *decoder) tool(p pair) {
	name := resolveAlias(p.key).Value
	t := &Tool{Name: name, Pos: posOf(p.key)}
	what := "tool " + name
	o := d.object(p.value, what, toolKeys)
	if v := o.get("description"); v != nil {
		t.Description, _ = d.str(v, what+": description")
	}
	if v := o.get("parameters"); v != nil {
		t.ParamsPos = posOf(v)
		if resolveAlias(v).Kind != yaml.MappingNode {
			d.errorf(posOf(v), CodeBadValue, "write a JSON Schema, e.g. {type: object, properties: {…}}", "%s: parameters must be a JSON Schema mapping, not %s", what, describe(v))
		} else if val, err := DecodeValue(v); err != nil {
			d.errorf(posOf(v), CodeBadValue, "", "%s: parameters: %v", what, err)
		} else {
			t.Parameters, _ = val.(map[string]any)
		}
	}
	if v := o.get("node"); v == nil {
		d.errorf(posOf(p.key), CodeMissingKey, "add e.g. `node: {type: http_fetch, with: {url: …}}`", "%s: missing required key `node`", what)
	} else {
		t.Node = d.node(pair{key: p.key, value: v}, "tool "+name+": node", toolNodeKeys)
		t.Node.Index = -1
	}
	if v := o.get("output"); v != nil {
		t.Output = v
	}
	d.w.Tools = append(d.w.Tools, t)
}

// node decodes one node (or a tool's node; then what names the tool and
// known omits the keys a tool's node cannot have).
func (d *decoder) node(p pair, kind string, known []string) *Node {
	name := resolveAlias(p.key).Value
	nd := &Node{Name: name, Pos: posOf(p.key), As: "item", OnError: OnErrorFail}
	what := kind
	if kind == "node" {
		what = "node " + name
	}
	o := d.object(p.value, what, known)
	if v := o.get("type"); v == nil {
		d.errorf(posOf(p.key), CodeMissingKey, "add e.g. `type: set`; `lgx nodes` lists the types", "%s: missing required key `type`", what)
	} else if s, ok := d.str(v, what+": type"); ok {
		nd.Type, nd.TypePos = s, posOf(v)
	}
	if v := o.get("description"); v != nil {
		nd.Description, _ = d.str(v, what+": description")
	}
	if v := o.get("with"); v != nil {
		switch {
		case isNull(v):
		case v.Kind != yaml.MappingNode:
			d.errorf(posOf(v), CodeBadValue, "", "%s: with must be a mapping of the type's inputs, not %s", what, describe(v))
		default:
			d.pairs(v, what+": with") // reports duplicate and non-string keys
			nd.With = v
		}
	}
	if v := o.get("for_each"); v != nil {
		if v.Kind == yaml.MappingNode || isNull(v) {
			d.errorf(posOf(v), CodeBadValue, "write an expression, e.g. for_each: ${{ state.urls }}", "%s: for_each must be an expression or a list, not %s", what, describe(v))
		} else {
			nd.ForEach = v
		}
	}
	if v := o.get("as"); v != nil {
		if nm, ok := d.name(v, what+": as"); ok {
			nd.As, nd.AsPos = nm.Value, nm.Pos
		}
		if nd.ForEach == nil {
			d.warnf(posOf(v), CodeBadValue, "", "%s: `as` has no effect without for_each", what)
		}
	}
	if v := o.get("concurrency"); v != nil {
		nd.Concurrency, _ = d.integer(v, what+": concurrency", 1)
	}
	if v := o.get("pool"); v != nil {
		d.nodePools(nd, v, what+": pool")
	}
	if v := o.get("timeout"); v != nil {
		nd.Timeout, _ = d.duration(v, what+": timeout")
	}
	if v := o.get("retry"); v != nil {
		r := d.retry(v, what+": retry", d.w.Config.Retry)
		nd.Retry = &r
	}
	if v := o.get("on_error"); v != nil {
		if s, ok := d.str(v, what+": on_error"); ok {
			if s != OnErrorFail && s != OnErrorContinue {
				d.errorf(posOf(v), CodeBadValue, didYouMean(s, []string{OnErrorFail, OnErrorContinue}), "%s: on_error must be fail or continue, not %q", what, s)
			} else {
				nd.OnError = s
			}
		}
	}
	if v := o.get("output"); v != nil {
		nd.OutputPos = posOf(v)
		d.nodeOutput(nd, v, what)
	}
	return nd
}

// nodesPerCore is the fewest nodes worth decoding on a core of their own.
const nodesPerCore = 1000

// nodes decodes the workflow's nodes, in file order, and builds their value
// trees (buildProgram's part for nodes). A large workflow's are decoded on
// every core, each run of nodes by a decoder of its own whose
// diagnostics join d's in order (Load sorts them anyway).
func (d *decoder) nodes(ps []pair) []*Node {
	nodes := make([]*Node, len(ps))
	parts := min(runtime.GOMAXPROCS(0), len(ps)/nodesPerCore)
	if parts < 2 {
		for i, p := range ps {
			nodes[i] = d.node(p, "node", nodeKeys)
			nodes[i].Index = i
			nodes[i].buildTrees()
		}
		return nodes
	}
	subs := make([]decoder, parts)
	panics := make([]any, parts)
	var wg sync.WaitGroup
	for k := range subs {
		sub := &subs[k]
		sub.w = d.w
		wg.Go(func() {
			// Load recovers from a bug as a diagnostic, on its own
			// goroutine: hand it the panic.
			defer func() { panics[k] = recover() }()
			for i := k * len(ps) / parts; i < (k+1)*len(ps)/parts; i++ {
				nodes[i] = sub.node(ps[i], "node", nodeKeys)
				nodes[i].Index = i
				nodes[i].buildTrees()
			}
		})
	}
	wg.Wait()
	for k := range subs {
		if panics[k] != nil {
			panic(panics[k])
		}
		d.diags = append(d.diags, subs[k].diags...)
		d.synthetic = append(d.synthetic, subs[k].synthetic...)
	}
	return nodes
}

// nodeOutput decodes `output:`: a mapping of state keys to values, or a bare
// key, shorthand for {key: ${{ result }}}.
func (d *decoder) nodeOutput(nd *Node, v *yaml.Node, what string) {
	switch {
	case isNull(v):
	case v.Kind == yaml.ScalarNode:
		val := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "${{ result }}", Line: v.Line, Column: v.Column}
		d.synthetic = append(d.synthetic, val)
		nd.Output = []*OutputEntry{{Key: v.Value, Pos: posOf(v), Value: val}}
	case v.Kind == yaml.MappingNode:
		for _, p := range d.pairs(v, what+": output") {
			nd.Output = append(nd.Output, &OutputEntry{Key: resolveAlias(p.key).Value, Pos: posOf(p.key), Value: p.value})
		}
	default:
		d.errorf(posOf(v), CodeBadValue, "write `output: key` or `output: {key: value}`", "%s: output must be a state key or a mapping of state keys to values, not %s", what, describe(v))
	}
}

func (d *decoder) edges(n *yaml.Node) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(posOf(n), CodeBadValue, "write e.g. `edges: [{from: START, to: first}]`", "edges must be a list, not %s", describe(n))
		return
	}
	for _, c := range n.Content {
		if e := d.edge(c); e != nil {
			d.w.Edges = append(d.w.Edges, e)
		}
	}
}

func (d *decoder) edge(n *yaml.Node) *Edge {
	if resolveAlias(n).Kind != yaml.MappingNode {
		d.errorf(posOf(n), CodeEdge, "write {from: a, to: b} or {from: a, when: [{if: …, to: b}], else: c}", "an edge must be a mapping, not %s", describe(n))
		return nil
	}
	e := &Edge{Pos: posOf(n)}
	o := d.object(n, "an edge", edgeKeys)
	if v := o.get("from"); v == nil {
		d.errorf(e.Pos, CodeEdge, "", "edge: missing required key `from`")
	} else {
		e.From = d.names(v, "edge from")
	}
	to, when, els := o.get("to"), o.get("when"), o.get("else")
	switch {
	case to != nil && when != nil:
		d.errorf(o.keyPos("when"), CodeEdge, "split it into two edges", "edge: give either `to` or `when`, not both")
	case to == nil && when == nil:
		d.errorf(e.Pos, CodeEdge, "", "edge: missing `to` (or `when` for a conditional edge)")
	}
	if to != nil {
		e.To = d.names(to, "edge to")
	}
	if when != nil {
		if when.Kind != yaml.SequenceNode {
			d.errorf(posOf(when), CodeEdge, "write when: [{if: EXPR, to: node}, …]", "edge: when must be a list of cases, not %s", describe(when))
		} else {
			e.HasWhen = true
			for _, c := range when.Content {
				cs := &Case{Pos: posOf(c)}
				co := d.object(c, "a when case", caseKeys)
				if v := co.get("if"); v == nil {
					d.errorf(cs.Pos, CodeEdge, "", "when case: missing required key `if`")
				} else if v.Kind != yaml.ScalarNode || isNull(v) {
					d.errorf(posOf(v), CodeEdge, "", "when case: if must be an expression, not %s", describe(v))
				} else {
					cs.If = v
				}
				if v := co.get("to"); v == nil {
					d.errorf(cs.Pos, CodeEdge, "", "when case: missing required key `to`")
				} else {
					cs.To = d.names(v, "case to")
				}
				e.When = append(e.When, cs)
			}
		}
	}
	if els != nil {
		if when == nil {
			d.errorf(o.keyPos("else"), CodeEdge, "use `to` for a plain edge", "edge: else needs when")
		}
		e.Else = d.names(els, "edge else")
		e.HasElse = true
	}
	return e
}

// sortedKeys returns m's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mcpServer decodes one entry of `mcp:`; validate_mcp.go checks the rest.
func (d *decoder) mcpServer(p pair) {
	name := resolveAlias(p.key).Value
	m := &MCPServer{Name: name, Pos: posOf(p.key)}
	what := "mcp server " + name
	o := d.object(p.value, what, mcpKeys)
	if v := o.get("command"); v != nil {
		m.Command, _ = d.str(v, what+": command")
		m.CommandPos = posOf(v)
	}
	strs := func(key string) []string {
		v := resolveAlias(o.get(key))
		if v == nil || isNull(v) {
			return nil
		}
		if v.Kind != yaml.SequenceNode {
			d.errorf(posOf(v), CodeBadValue, "write a list, e.g. [a, b]", "%s: %s must be a list of strings, not %s", what, key, describe(v))
			return nil
		}
		out := make([]string, 0, len(v.Content))
		for _, c := range v.Content {
			if s, ok := d.str(c, what+": "+key+" item"); ok {
				out = append(out, s)
			}
		}
		return out
	}
	m.Args = strs("args")
	if v := resolveAlias(o.get("env")); v != nil && !isNull(v) {
		if v.Kind != yaml.SequenceNode {
			d.errorf(posOf(v), CodeBadValue, "write e.g. `env: [API_TOKEN]`", "%s: env must be a list of environment variable names, not %s", what, describe(v))
		} else {
			m.Env = d.names(v, what+": env name")
		}
	}
	if v := o.get("cwd"); v != nil {
		m.Cwd, _ = d.str(v, what+": cwd")
	}
	if v := o.get("url"); v != nil {
		m.URL, _ = d.str(v, what+": url")
		m.URLPos = posOf(v)
	}
	for _, h := range d.pairs(o.get("headers"), what+": headers") {
		k := resolveAlias(h.key).Value
		if s, ok := d.str(h.value, what+": headers."+k); ok {
			if m.Headers == nil {
				m.Headers, m.HeaderPos = map[string]string{}, map[string]Pos{}
			}
			m.Headers[k] = s
			m.HeaderPos[k] = posOf(h.value)
		}
	}
	if v := o.get("pool"); v != nil {
		m.Pool, _ = d.name(v, what+": pool")
	}
	if v := o.get("timeout"); v != nil {
		m.Timeout, _ = d.duration(v, what+": timeout")
	}
	if v := resolveAlias(o.get("tools")); v != nil && !isNull(v) {
		if v.Kind != yaml.SequenceNode {
			d.errorf(posOf(v), CodeBadValue, "write e.g. `tools: [echo]`", "%s: tools must be a list of tool names, not %s", what, describe(v))
		} else {
			m.Tools = d.names(v, what+": tool name")
			if m.Tools == nil {
				m.Tools = []Name{}
			}
		}
	}
	d.w.MCP = append(d.w.MCP, m)
}
