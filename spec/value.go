package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
)

// Limits on what a workflow file may make lgx do before it runs anything.
// They reject YAML alias bombs ("billion laughs") and pathological nesting
// quickly; real workflows are far below them.
const (
	MaxFileSize = 2 << 20   // bytes; yaml.v3 parses about 1.5 MB/s, so this bounds Load to ~1.5 s
	MaxNodes    = 1_000_000 // YAML nodes visited, every alias expansion counted; a 10,000-node workflow has ~300,000
	MaxDepth    = 64        // nesting of mappings and sequences, aliases followed
)

// errValueBudget is returned when a value is larger or deeper than the limits.
var errValueBudget = errors.New("value too large or too deeply nested (YAML alias expansion or nesting beyond the limits)")

// DecodeValue turns a YAML literal into a JSON-like Go value:
// map[string]any, []any, string, int, float64, bool or nil. Aliases are
// followed (and merge keys `<<` applied) within MaxNodes and MaxDepth, so an
// alias bomb fails fast instead of exhausting memory.
func DecodeValue(n *yaml.Node) (any, error) {
	budget := MaxNodes
	return decodeValue(n, 0, &budget)
}

func decodeValue(n *yaml.Node, depth int, budget *int) (any, error) {
	if n == nil {
		return nil, nil
	}
	*budget--
	if *budget < 0 || depth > MaxDepth {
		return nil, errValueBudget
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return decodeValue(n.Content[0], depth, budget)
	case yaml.AliasNode:
		return decodeValue(n.Alias, depth+1, budget)
	case yaml.ScalarNode:
		return scalarValue(n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := decodeValue(c, depth+1, budget)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		// A key written twice in one mapping is a mistake YAML forbids
		// (an input file's second `name:` would win without a word).
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.ShortTag() == "!!merge" {
				continue
			}
			if kv, err := scalarValue(k); err == nil {
				ks := keyString(kv)
				if seen[ks] {
					return nil, fmt.Errorf("line %d: key %q is written twice in one mapping", k.Line, ks)
				}
				seen[ks] = true
			}
		}
		pairs, err := mappingPairs(n, depth, budget)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(pairs))
		for _, p := range pairs {
			k, err := scalarValue(p.key)
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(p.value, depth+1, budget)
			if err != nil {
				return nil, err
			}
			out[keyString(k)] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// keyString renders a decoded mapping key as the string JSON needs.
func keyString(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case nil:
		return "null"
	default:
		return fmt.Sprint(k)
	}
}

// scalarValue decodes one scalar: !!int → int (float64 when out of range),
// !!float → float64, !!bool, !!null → nil, anything else → string.
func scalarValue(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("line %d: a mapping key must be a scalar", n.Line)
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return b, nil
	case "!!int":
		var i int
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return f, nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return f, nil
	default:
		return n.Value, nil
	}
}

// pair is one key/value of a mapping.
type pair struct {
	key, value *yaml.Node
}

// mappingPairs returns a mapping's pairs in file order with aliases of
// whole mappings resolved and merge keys (`<<: *base`, `<<: [*a, *b]`)
// applied: explicit keys win over merged ones, earlier merged maps over
// later ones.
func mappingPairs(n *yaml.Node, depth int, budget *int) ([]pair, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if depth > MaxDepth {
		return nil, errValueBudget
	}
	own := make([]pair, 0, len(n.Content)/2)
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			srcs := []*yaml.Node{v}
			if r := resolveAlias(v); r.Kind == yaml.SequenceNode {
				srcs = r.Content
			}
			for _, s := range srcs {
				*budget--
				if *budget < 0 {
					return nil, errValueBudget
				}
				s = resolveAlias(s)
				if s.Kind != yaml.MappingNode {
					return nil, fmt.Errorf("line %d: a merge key `<<` needs a mapping or a list of mappings", v.Line)
				}
				ps, err := mappingPairs(s, depth+1, budget)
				if err != nil {
					return nil, err
				}
				merged = append(merged, ps...)
			}
			continue
		}
		own = append(own, pair{k, v})
	}
	if merged == nil {
		return own, nil
	}
	seen := make(map[string]bool, len(own)+len(merged))
	out := make([]pair, 0, len(own)+len(merged))
	for _, p := range own {
		seen[resolveAlias(p.key).Value] = true
		out = append(out, p)
	}
	for _, p := range merged {
		k := resolveAlias(p.key).Value
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// resolveAlias follows an alias node to its anchor (bounded, so a
// malformed chain cannot loop).
// ResolveAlias follows an alias to the node it names, for other readers
// of YAML files (test files) to read them as workflow files are read.
func ResolveAlias(n *yaml.Node) *yaml.Node { return resolveAlias(n) }

// MappingPairs returns the key-value pairs of mapping n as workflow files
// read them (mappingPairs: aliases resolved, merge keys applied, within
// the loader's limits), for other readers of YAML files.
func MappingPairs(n *yaml.Node) ([][2]*yaml.Node, error) {
	budget := MaxNodes
	ps, err := mappingPairs(n, 0, &budget)
	if err != nil {
		return nil, err
	}
	out := make([][2]*yaml.Node, len(ps))
	for i, p := range ps {
		out[i] = [2]*yaml.Node{p.key, p.value}
	}
	return out, nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < MaxDepth; i++ {
		n = n.Alias
	}
	return n
}

// ParseDuration parses a Go-style duration ("500ms", "10s", "1h30m").
// Negative durations are errors.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

// ParseRate parses a rate `N/s`, `N/min` or `N/h` (also `N/sec`, `N/m`,
// `N/minute`, `N/hour`; N a positive integer).
func ParseRate(s string) (Rate, error) {
	bad := fmt.Errorf("%q is not a rate", s)
	num, unit, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	if !ok {
		return Rate{}, bad
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return Rate{}, bad
	}
	var per time.Duration
	switch unit {
	case "s", "sec", "second":
		per = time.Second
	case "m", "min", "minute":
		per = time.Minute
	case "h", "hour":
		per = time.Hour
	default:
		return Rate{}, bad
	}
	return Rate{Count: n, Per: per}, nil
}

// ParseByteSize parses a byte size: an integer number of bytes, or an integer
// with KB/MB/GB (×1000) or KiB/MiB/GiB (×1024). It is the catalog's parser, so
// that validation and execution agree.
func ParseByteSize(s string) (int64, error) { return nodes.ParseByteSize(s) }

// sizeValue parses a byte size from a YAML scalar: an integer or a string.
func sizeValue(n *yaml.Node) (int64, error) {
	if n.ShortTag() == "!!int" {
		var i int64
		if err := n.Decode(&i); err != nil || i < 0 {
			return 0, fmt.Errorf("%q is not a byte size", n.Value)
		}
		return i, nil
	}
	if n.ShortTag() == "!!float" {
		var f float64
		if err := n.Decode(&f); err == nil && f >= 0 && f == math.Trunc(f) && f < math.MaxInt64 {
			return int64(f), nil
		}
	}
	return ParseByteSize(n.Value)
}

// bytesReader is bytes.NewReader without the import in every file.
func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
