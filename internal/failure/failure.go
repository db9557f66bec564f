// Package failure declares the failure kinds of lgx once: the node catalog
// (nodes.Kind, which `retry.on` and `error.kind` read) and the LLM
// adapters (nodes/llm, which nodes imports and so cannot import it back)
// both take their values from here.
package failure

// Failure kinds.
const (
	Network   = "network"   // connection refused, reset, DNS, TLS…
	Timeout   = "timeout"   // the attempt's deadline passed
	Status    = "status"    // a response status outside `expect`
	Schema    = "schema"    // a value does not fit a JSON Schema
	Template  = "template"  // a template failed to render
	Type      = "type"      // a write does not fit its state key
	Input     = "input"     // a resolved `with` value is unusable
	Expr      = "expr"      // an expression failed at run time
	Panic     = "panic"     // the node panicked (recovered)
	Cancelled = "cancelled" // the run was cancelled
	Provider  = "provider"  // an LLM provider returned an error
	Limit     = "limit"     // a resource limit was reached (size budget, subgraph depth)
	Cassette  = "cassette"  // a replayed request has no recording (lgx run --replay, lgx test)
	Budget    = "budget"    // a token budget cannot cover the call (SPEC §9.9)
)
