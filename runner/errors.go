package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// InputError is a problem with the run's inputs (unknown key, missing
// required key, wrong type) or with a resume request; the CLI reports it as a
// usage error (exit 2). Nothing ran.
type InputError struct {
	Msg string
	// Hint says how to give the input on the command line (-i NAME=VALUE),
	// shown in parentheses after Msg; a subgraph's child, whose inputs
	// come from its node's with.input, leaves it out.
	Hint string
}

func (e *InputError) Error() string {
	if e.Hint == "" {
		return e.Msg
	}
	return e.Msg + " (" + e.Hint + ")"
}

// NodeError is a node invocation that failed the run: where (step, node,
// for_each index; -1 when the node has no for_each) and why.
type NodeError struct {
	Step  int
	Node  string
	Index int
	Kind  nodes.Kind
	Err   error
	// Repeats: the failure depends only on the workflow and the state a
	// resume restores (an expression, a reducer, a pure node, inputs the
	// node refused), so resuming would fail the same way.
	Repeats bool
}

// stateFailure is the NodeError of a failure that depends only on the
// workflow and the state (an edge's or for_each's expression, a reducer):
// a resume would meet it again, unless it was a timeout or a cancellation.
// readsEnv says the expressions involved read env or secrets, which a
// resume may give other values.
func stateFailure(step int, node string, index int, kind nodes.Kind, err error, readsEnv bool) *NodeError {
	return &NodeError{Step: step, Node: node, Index: index, Kind: kind, Err: err,
		Repeats: !readsEnv && kind != nodes.KindTimeout && kind != nodes.KindCancelled}
}

func (e *NodeError) Error() string {
	where := fmt.Sprintf("node %s", e.Node)
	if e.Index >= 0 {
		where = fmt.Sprintf("node %s item %d", e.Node, e.Index)
	}
	kind := ""
	if e.Kind != "" {
		kind = fmt.Sprintf(" [%s]", e.Kind)
	}
	return fmt.Sprintf("step %d: %s failed%s: %v", e.Step, where, kind, e.Err)
}

func (e *NodeError) Unwrap() error { return e.Err }

// ConflictError is two or more writes to a `replace` key in one super-step.
type ConflictError struct {
	Key     string
	Step    int
	Writers []string // node names, `node[i]` for for_each items, in apply order
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("step %d: state key %q (reducer replace) written by %d writers in one step: %s; "+
		"declare a reducer for %q (e.g. reducer: append) or route the writers into different steps",
		e.Step, e.Key, len(e.Writers), strings.Join(e.Writers, ", "), e.Key)
}

// RecursionError is a run that needed more super-steps than
// config.recursion_limit allows.
type RecursionError struct {
	Limit int
	Nodes []string // nodes triggered for the step past the limit
}

func (e *RecursionError) Error() string {
	return fmt.Sprintf("recursion limit of %d steps reached; still triggered: %s "+
		"(raise config.recursion_limit or add an exit condition)", e.Limit, strings.Join(e.Nodes, ", "))
}

// TimeoutError is a run that passed its config.timeout deadline. The run is
// recorded as failed and can be resumed.
type TimeoutError struct {
	Timeout time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("run exceeded config.timeout of %s (resumable)", e.Timeout)
}

// ErrCancelled is returned (wrapped) when the run's context was cancelled;
// the run is recorded as cancelled and can be resumed.
var ErrCancelled = errors.New("run cancelled")

// InvalidWorkflowError is a workflow loaded by the runner itself (a
// subgraph's child, a resumed run's recorded text) that has errors.
type InvalidWorkflowError struct {
	File        string
	Diagnostics spec.Diagnostics
}

func (e *InvalidWorkflowError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid workflow %s:", e.File)
	for _, d := range e.Diagnostics {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// asJSONHint shows how to give a list, an object or messages that arrived
// as text (-i tags=a,b): as JSON, the comma-separated parts of the text
// made a list. "" for anything else.
func asJSONHint(key, typ string, v any) string {
	if h := numberHint(typ, v); h != "" {
		return h
	}
	s, ok := v.(string)
	if !ok {
		return ""
	}
	if t := strings.TrimSpace(s); (typ == spec.TypeList || typ == spec.TypeObject || typ == spec.TypeMessages) &&
		(strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{")) {
		// Meant as JSON, and not valid: say where, rather than
		// suggest splitting it at its commas.
		if _, err := value.DecodeJSON([]byte(t)); err != nil {
			return err.Error()
		}
	}
	var what, example string
	switch typ {
	case spec.TypeList:
		parts := []string{}
		if strings.TrimSpace(s) != "" {
			parts = strings.Split(s, ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
		}
		b, _ := json.Marshal(parts) // strings always marshal
		what, example = "a list", string(b)
	case spec.TypeObject:
		what, example = "an object", `{"name":"value"}`
	case spec.TypeMessages:
		what, example = "messages", `[{"role":"user","content":"..."}]`
	default:
		return ""
	}
	return fmt.Sprintf("give %s as JSON: -i '%s=%s'", what, key, example)
}

// numberHint explains why a number given to a number or integer key did
// not fit: text that is a number too large for any number (-i k=1e400
// stays text), or a whole number beyond the integers a number holds
// exactly.
func numberHint(typ string, v any) string {
	if typ != spec.TypeInteger && typ != spec.TypeNumber {
		return ""
	}
	switch x := v.(type) {
	case string:
		if _, err := strconv.ParseFloat(strings.TrimSpace(x), 64); errors.Is(err, strconv.ErrRange) {
			return fmt.Sprintf("%s is beyond the range of a number, about ±1.8e308, so it was read as text", strings.TrimSpace(x))
		}
	case float64:
		switch {
		case typ != spec.TypeInteger || x != math.Trunc(x) || math.Abs(x) <= 1<<53:
		case math.Abs(x) >= 1<<63:
			return fmt.Sprintf("%s is beyond the integer range, ±%d; use a number or string key", strconv.FormatFloat(x, 'f', -1, 64), math.MaxInt64)
		default:
			return fmt.Sprintf("write it as digits, %s: a number with an exponent or fraction beyond ±2^53 is not taken as an integer", strconv.FormatFloat(x, 'f', -1, 64))
		}
	}
	return ""
}
