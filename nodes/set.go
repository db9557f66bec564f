package nodes

import "context"

func init() { Register(setType{}) }

// setType is the `set` type (SPEC §5.4): it does no work; its node's
// `output` computes the writes (counters, reshaping state, routing).
type setType struct{}

func (setType) Name() string { return "set" }

// Pure: a set node only computes its output from the state.
// Capabilities: a set node only evaluates its output.
func (setType) Capabilities() Capabilities { return Capabilities{Pure: true, Instant: true} }

func (setType) Doc() Doc {
	return Doc{Summary: "Does no work: the node's `output` writes computed values to state. Without `output` it is a no-op, useful for routing.", NoResult: true}
}

// Run returns a null result.
func (setType) Run(context.Context, *Invocation) (any, error) { return nil, nil }
