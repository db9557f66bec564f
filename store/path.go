package store

import (
	"errors"
	"strconv"
)

// InvocationPath is the path of a top-level invocation (SPEC §9.1):
// STEP/NODE for a node, STEP/NODE[INDEX] for a for_each item (index ≥ 0).
// A record stored without a Path gets this one.
func InvocationPath(step int, node string, index int) string {
	b := make([]byte, 0, len(node)+16)
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, '/')
	b = append(b, node...)
	if index >= 0 {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(index), 10)
		b = append(b, ']')
	}
	return string(b)
}

// pathOf returns inv's identity within its run: its Path, or the path of
// (Step, Node, Index) when the caller left Path empty.
func pathOf(inv *Invocation) string {
	if inv.Path != "" {
		return inv.Path
	}
	return InvocationPath(inv.Step, inv.Node, inv.Index)
}

// CheckpointMerger is implemented by stores that keep only what resume
// needs of a run's checkpoints, not their history: Checkpoints returns at
// most one checkpoint, carrying the latest step's Step, Next, Joins and At
// and in Changed every key's latest value. Replaying it gives the same
// state as replaying every checkpoint, in memory proportional to the state
// rather than to the number of steps. Such a store refuses a checkpoint
// for a step older than the latest one, whose history it no longer has.
type CheckpointMerger interface {
	MergesCheckpoints() bool
}

// MergesCheckpoints reports whether st keeps only a merged checkpoint per
// run (see CheckpointMerger).
func MergesCheckpoints(st Store) bool {
	m, ok := st.(CheckpointMerger)
	return ok && m.MergesCheckpoints()
}

// ErrCheckpointOrder is wrapped when a store that merges checkpoints is
// given one for a step older than the run's latest.
var ErrCheckpointOrder = errors.New("checkpoint older than the run's latest")
