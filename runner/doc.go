// Package runner compiles a validated workflow into a Graph and executes it
// in LangGraph-style super-steps (SPEC §4.1).
//
// Compile prepares everything once: expr programs for every `${{ }}`,
// interpolated strings split into segments, Static `with` fields handed to
// the node type's Prepare, reducers resolved, and edges turned into per-node
// adjacency and join slots. Run then executes steps: every triggered node
// reads the snapshot taken at the start of the step, runs under the caps of
// limits.go with per-attempt timeouts and retries, and after the barrier its
// writes are applied through the reducers in node file order, for_each items
// in index order, so the result never depends on timing. Edges are evaluated
// against the new state; joins fire once every source completed since they
// last fired. Events go to a Sink; a store.Store, when given, records the run,
// each invocation's writes the moment it finishes, and a checkpoint of the
// changed keys at every step boundary, which is what Resume replays.
package runner
