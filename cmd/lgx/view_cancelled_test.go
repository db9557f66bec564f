package main

import (
	"slices"
	"testing"

	"github.com/lgx-run/lgx/internal/progress"
	"github.com/lgx-run/lgx/runner"
)

// Runs cut short by a cancellation (Ctrl-C, a failing sibling) count under
// RUNS and CANCELLED, but their durations are not the node's work times:
// P50 and MAX are of the runs that finished (succeeded or failed).
func TestSummaryExcludesCancelledDurations(t *testing.T) {
	evs := []runner.Event{
		{Event: runner.EventRunStart, TS: at(0), Workflow: "demo"},
		{Event: runner.EventStepStart, TS: at(1), Step: 1, Nodes: []string{"fetch", "slow"}},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "slow"},
		{Event: runner.EventAcquired, TS: at(0), Step: 1, Node: "slow"},
	}
	for i := range 4 {
		evs = append(evs,
			runner.Event{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "fetch", Index: idx(i)},
			runner.Event{Event: runner.EventAcquired, TS: at(0), Step: 1, Node: "fetch", Index: idx(i)})
	}
	evs = append(evs,
		runner.Event{Event: runner.EventNodeEnd, TS: at(1000), Step: 1, Node: "fetch", Index: idx(0)},
		runner.Event{Event: runner.EventNodeError, TS: at(1200), Step: 1, Node: "fetch", Index: idx(1), Kind: "http", Error: "GET: connection refused"},
		runner.Event{Event: runner.EventNodeError, TS: at(476), Step: 1, Node: "fetch", Index: idx(2), Attempt: 1, Kind: "cancelled", Error: "cancelled"},
		runner.Event{Event: runner.EventNodeError, TS: at(476), Step: 1, Node: "fetch", Index: idx(3), Attempt: 1, Kind: "cancelled", Error: "cancelled"},
		runner.Event{Event: runner.EventNodeError, TS: at(476), Step: 1, Node: "slow", Attempt: 1, Kind: "cancelled", Error: "cancelled"},
		runner.Event{Event: runner.EventRunEnd, TS: at(1300), Status: "cancelled"},
	)
	m := progress.New(progress.Options{})
	for _, e := range evs {
		m.Apply(e)
	}
	header, rows := summaryRows(m.Snapshot())
	if want := []string{"NODE", "RUNS", "FAILED", "CANCELLED", "RETRIES", "P50", "MAX"}; !slices.Equal(header, want) {
		t.Fatalf("header %q, want %q", header, want)
	}
	want := [][]string{
		{"fetch", "4", "1", "2", "0", "1.00s", "1.20s"},
		{"slow", "1", "0", "1", "0", "-", "-"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows %q, want %q", rows, want)
	}
}
