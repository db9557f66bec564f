// Package storetest is a conformance suite for store.Store
// implementations: every store (memory, SQLite, a future server-backed
// one) must pass Run, so the executor and the CLI can rely on the same
// behaviour whichever store is configured.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGetRoundTrip", testCreateGet},
		{"CreateRejects", testCreateRejects},
		{"GetUnknown", testGetUnknown},
		{"ListRuns", testListRuns},
		{"FinishRun", testFinishRun},
		{"SetStatus", testSetStatus},
		{"UnknownRunWrites", testUnknownRunWrites},
		{"InvocationRoundTrip", testInvocationRoundTrip},
		{"InvocationReplace", testInvocationReplace},
		{"InvocationOrder", testInvocationOrder},
		{"InvocationRejects", testInvocationRejects},
		{"CheckpointRoundTrip", testCheckpointRoundTrip},
		{"CheckpointOrderAndReplace", testCheckpointOrder},
		{"CheckpointRejectsInvalidJSON", testCheckpointRejects},
		{"CheckpointGrowingValues", testCheckpointGrowing},
		{"CheckpointExtensions", testCheckpointExtensions},
		{"RunsAreIsolated", testIsolation},
		{"CopiesInAndOut", testCopies},
		{"WritesOutliveCancel", testWritesOutliveCancel},
		{"ConcurrentRecord", testConcurrentRecord},
		{"CommitStep", testCommitStep},
		{"CommitLargeBatch", testCommitLargeBatch},
		{"RecordInvocations", testRecordInvocations},
		{"InvocationPaths", testInvocationPaths},
		{"SubgraphSources", testSubgraphSources},
		{"Leases", testLeases},
		{"LeaseRace", testLeaseRace},
		{"PruneRuns", testPruneRuns},
	}
	for _, tc := range tests {
		runCase(t, tc.name, open, tc.fn)
	}
}

// base is a fixed instant with nanoseconds in a non-UTC zone, so stores
// that drop precision or mangle zones fail.
var base = time.Date(2026, 11, 26, 21, 30, 15, 123456789, time.FixedZone("X", 5*3600+1800))

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

// newRun is a running run whose owner, this process, holds a live lease,
// so stores report it as running.
func newRun(id string, started time.Time) *store.Run {
	return &store.Run{
		ID:        id,
		Workflow:  "wf-" + id,
		File:      "/tmp/" + id + ".yaml",
		Source:    []byte("name: wf\nnodes:\n  a: {type: set}\n"),
		Inputs:    json.RawMessage(`{"topic": "go",  "n": [1, 2]}`),
		Status:    store.StatusRunning,
		StartedAt: started,
		Lease:     liveLease("owner-" + id),
	}
}

// liveLease is a lease of this process that expires in an hour.
func liveLease(owner string) *store.Lease {
	return &store.Lease{Owner: owner, PID: os.Getpid(), Host: store.Hostname(), Expires: time.Now().Add(time.Hour).Round(time.Microsecond)}
}

func mustCreate(t *testing.T, s store.Store, r *store.Run) {
	t.Helper()
	if err := s.CreateRun(context.Background(), r); err != nil {
		t.Fatalf("CreateRun(%s): %v", r.ID, err)
	}
}

func mustRecord(t *testing.T, s store.Store, inv *store.Invocation) {
	t.Helper()
	if err := s.RecordInvocation(context.Background(), inv); err != nil {
		t.Fatalf("RecordInvocation(%s/%d/%s/%d): %v", inv.RunID, inv.Step, inv.Node, inv.Index, err)
	}
}

func mustGet(t *testing.T, s store.Store, id string) *store.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}

func mustInvocations(t *testing.T, s store.Store, id string) []*store.Invocation {
	t.Helper()
	invs, err := s.Invocations(context.Background(), id)
	if err != nil {
		t.Fatalf("Invocations(%s): %v", id, err)
	}
	return invs
}

func mustCheckpoints(t *testing.T, s store.Store, id string) []*store.Checkpoint {
	t.Helper()
	cps, err := s.Checkpoints(context.Background(), id)
	if err != nil {
		t.Fatalf("Checkpoints(%s): %v", id, err)
	}
	return cps
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero time", what, got)
		}
		return
	}
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func checkRun(t *testing.T, got, want *store.Run) {
	t.Helper()
	if got.ID != want.ID || got.Workflow != want.Workflow || got.File != want.File ||
		got.Status != want.Status || got.Error != want.Error {
		t.Errorf("run = {%s %s %s %s %q}, want {%s %s %s %s %q}",
			got.ID, got.Workflow, got.File, got.Status, got.Error,
			want.ID, want.Workflow, want.File, want.Status, want.Error)
	}
	sameBytes(t, "Source", got.Source, want.Source)
	sameBytes(t, "Inputs", got.Inputs, want.Inputs)
	sameTime(t, "StartedAt", got.StartedAt, want.StartedAt)
	sameTime(t, "EndedAt", got.EndedAt, want.EndedAt)
	checkLease(t, got.Lease, want.Lease)
}

func checkLease(t *testing.T, got, want *store.Lease) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("Lease = %+v, want %+v", got, want)
	default:
		if got.Owner != want.Owner || got.PID != want.PID || got.Host != want.Host {
			t.Errorf("Lease = %+v, want %+v", *got, *want)
		}
		sameTime(t, "Lease.Expires", got.Expires, want.Expires)
	}
}

func checkInvocation(t *testing.T, got, want *store.Invocation) {
	t.Helper()
	wantPath := want.Path
	if wantPath == "" {
		wantPath = store.InvocationPath(want.Step, want.Node, want.Index)
	}
	if got.RunID != want.RunID || got.Path != wantPath || got.Step != want.Step || got.Node != want.Node || got.Index != want.Index ||
		got.Status != want.Status || got.Error != want.Error || got.ErrorKind != want.ErrorKind || got.Attempts != want.Attempts {
		t.Errorf("invocation = %s, want %s", fmtInv(got), fmtInv(want))
	}
	sameBytes(t, "Writes", got.Writes, want.Writes)
	sameTime(t, "StartedAt", got.StartedAt, want.StartedAt)
	sameTime(t, "EndedAt", got.EndedAt, want.EndedAt)
}

func fmtInv(inv *store.Invocation) string {
	return fmt.Sprintf("{%s %q %d %s %d %s writes=%s err=%q kind=%s attempts=%d}",
		inv.RunID, inv.Path, inv.Step, inv.Node, inv.Index, inv.Status, inv.Writes, inv.Error, inv.ErrorKind, inv.Attempts)
}

func testCreateGet(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		run  *store.Run
		want store.Status // as GetRun reports it
	}{
		{"full", newRun("01A", at(0)), store.StatusRunning},
		// Running with nobody holding a lease: its owner died (SPEC §9.3).
		{"minimal", &store.Run{ID: "01B", Status: store.StatusRunning}, store.StatusStale},
		{"finished fields at create", &store.Run{
			ID: "01C", Workflow: "w", Status: store.StatusFailed, Error: "boom: ü 🚀",
			Source: []byte{0, 1, 2, 255}, Inputs: json.RawMessage(`null`),
			StartedAt: at(1), EndedAt: at(2),
		}, store.StatusFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustCreate(t, s, tc.run)
			want := *tc.run
			want.Status = tc.want
			checkRun(t, mustGet(t, s, tc.run.ID), &want)
		})
	}
}

func testCreateRejects(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("dup", at(0)))
	if err := s.CreateRun(ctx, newRun("dup", at(1))); err == nil {
		t.Error("CreateRun with a used id succeeded, want error")
	}
	if got := mustGet(t, s, "dup"); !got.StartedAt.Equal(at(0)) {
		t.Errorf("duplicate CreateRun changed the run: StartedAt = %v", got.StartedAt)
	}
	if err := s.CreateRun(ctx, &store.Run{}); err == nil {
		t.Error("CreateRun with an empty id succeeded, want error")
	}
}

func testGetUnknown(t *testing.T, s store.Store) {
	_, err := s.GetRun(context.Background(), "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRun(unknown) error = %v, want ErrNotFound", err)
	}
	mustCreate(t, s, newRun("known", at(0)))
	if _, err := s.GetRun(context.Background(), "know"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRun(prefix of a known id) error = %v, want ErrNotFound", err)
	}
}

func ids(runs []*store.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func testListRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	empty, err := s.ListRuns(ctx, 0)
	if err != nil || len(empty) != 0 {
		t.Fatalf("ListRuns on empty store = %v, %v; want none, nil", ids(empty), err)
	}
	// Created out of order; r3 and r4 start at the same instant, so the id
	// (sortable) breaks the tie.
	r5 := newRun("r5", at(40))
	for _, r := range []*store.Run{
		newRun("r2", at(20)), newRun("r1", at(10)), newRun("r4", at(30)),
		newRun("r3", at(30)), r5,
	} {
		mustCreate(t, s, r)
	}
	tests := []struct {
		limit int
		want  []string
	}{
		{0, []string{"r5", "r4", "r3", "r2", "r1"}},
		{-1, []string{"r5", "r4", "r3", "r2", "r1"}},
		{2, []string{"r5", "r4"}},
		{5, []string{"r5", "r4", "r3", "r2", "r1"}},
		{50, []string{"r5", "r4", "r3", "r2", "r1"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit=%d", tc.limit), func(t *testing.T) {
			runs, err := s.ListRuns(ctx, tc.limit)
			if err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
			if got := ids(runs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ListRuns(%d) = %v, want %v", tc.limit, got, tc.want)
			}
		})
	}
	runs, _ := s.ListRuns(ctx, 1)
	if len(runs) == 1 {
		checkRun(t, runs[0], r5)
	}
}

func testFinishRun(t *testing.T, s store.Store) {
	ctx := context.Background()
	tests := []struct {
		status store.Status
		msg    string
	}{
		{store.StatusCompleted, ""},
		{store.StatusFailed, "node fetch: http 500"},
		{store.StatusCancelled, "context canceled"},
		{store.StatusInterrupted, ""},
	}
	for i, tc := range tests {
		t.Run(string(tc.status), func(t *testing.T) {
			r := newRun(fmt.Sprintf("f%d", i), at(i))
			mustCreate(t, s, r)
			if err := s.FinishRun(ctx, r.ID, tc.status, tc.msg, at(100+i)); err != nil {
				t.Fatalf("FinishRun: %v", err)
			}
			want := *r
			want.Status, want.Error, want.EndedAt = tc.status, tc.msg, at(100+i)
			want.Lease = nil // the run stopped: nobody executes it
			checkRun(t, mustGet(t, s, r.ID), &want)
		})
	}
	if err := s.FinishRun(ctx, "nope", store.StatusFailed, "x", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishRun(unknown) error = %v, want ErrNotFound", err)
	}
}

func testSetStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun("s1", at(0))
	mustCreate(t, s, r)
	if err := s.FinishRun(ctx, r.ID, store.StatusFailed, "boom", at(5)); err != nil {
		t.Fatalf("FinishRun: %v", err)
	}
	if err := s.SetStatus(ctx, r.ID, store.StatusRunning); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	got := mustGet(t, s, r.ID)
	// FinishRun released the lease: running again but owned by nobody
	// until the resuming process takes the lease.
	if got.Status != store.StatusStale {
		t.Errorf("Status = %s, want stale (running without a lease)", got.Status)
	}
	if err := s.AcquireLease(ctx, r.ID, *liveLease("resumer")); err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	if got := mustGet(t, s, r.ID); got.Status != store.StatusRunning {
		t.Errorf("Status with a live lease = %s, want running", got.Status)
	}
	if !got.EndedAt.IsZero() || got.Error != "" {
		t.Errorf("after SetStatus(running): EndedAt = %v, Error = %q; want zero, empty (the run is live again)", got.EndedAt, got.Error)
	}
	sameTime(t, "StartedAt", got.StartedAt, r.StartedAt)
	if err := s.SetStatus(ctx, "nope", store.StatusRunning); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetStatus(unknown) error = %v, want ErrNotFound", err)
	}
}

func testUnknownRunWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.RecordInvocation(ctx, &store.Invocation{RunID: "nope", Node: "a", Index: -1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordInvocation(unknown run) error = %v, want ErrNotFound", err)
	}
	if err := s.WriteCheckpoint(ctx, &store.Checkpoint{RunID: "nope", Step: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WriteCheckpoint(unknown run) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Invocations(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Invocations(unknown run) error = %v, want ErrNotFound", err)
	}
	if _, err := s.Checkpoints(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Checkpoints(unknown run) error = %v, want ErrNotFound", err)
	}
	mustCreate(t, s, newRun("empty", at(0)))
	if invs := mustInvocations(t, s, "empty"); len(invs) != 0 {
		t.Errorf("Invocations(new run) = %d records, want 0", len(invs))
	}
	if cps := mustCheckpoints(t, s, "empty"); len(cps) != 0 {
		t.Errorf("Checkpoints(new run) = %d records, want 0", len(cps))
	}
}

func testInvocationRoundTrip(t *testing.T, s store.Store) {
	mustCreate(t, s, newRun("run", at(0)))
	tests := []struct {
		name string
		inv  *store.Invocation
	}{
		{"ok", &store.Invocation{
			RunID: "run", Step: 1, Node: "fetch", Index: -1, Status: store.InvocationOK,
			Writes:   json.RawMessage(`{"page": "<html>\n ü</html>",  "n": 1.50}`),
			Attempts: 1, StartedAt: at(1), EndedAt: at(2),
		}},
		{"failed", &store.Invocation{
			RunID: "run", Step: 2, Node: "llm", Index: 0, Status: store.InvocationFailed,
			Error: "provider: 429 too many requests", ErrorKind: "rate_limit", Attempts: 3,
			StartedAt: at(3), EndedAt: at(4),
		}},
		{"continued", &store.Invocation{
			RunID: "run", Step: 2, Node: "llm", Index: 7, Status: store.InvocationContinued,
			Writes: json.RawMessage(`{"err":"x"}`), Error: "timeout", ErrorKind: "timeout", Attempts: 2,
			StartedAt: at(5), EndedAt: at(6),
		}},
		{"interrupted", &store.Invocation{
			RunID: "run", Step: 3, Node: "ask", Index: -1, Status: store.InvocationInterrupted,
			StartedAt: at(7),
		}},
	}
	for _, tc := range tests {
		mustRecord(t, s, tc.inv)
	}
	invs := mustInvocations(t, s, "run")
	if len(invs) != len(tests) {
		t.Fatalf("Invocations = %d records, want %d", len(invs), len(tests))
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkInvocation(t, invs[i], tc.inv) })
	}
}

func testInvocationReplace(t *testing.T, s store.Store) {
	mustCreate(t, s, newRun("run", at(0)))
	first := &store.Invocation{RunID: "run", Step: 1, Node: "ask", Index: -1,
		Status: store.InvocationInterrupted, Attempts: 1, StartedAt: at(1)}
	mustRecord(t, s, first)
	// Same node, other identities: index 0 and step 2 are distinct records.
	other0 := &store.Invocation{RunID: "run", Step: 1, Node: "ask", Index: 0, Status: store.InvocationOK, Writes: json.RawMessage(`{"a":0}`)}
	other2 := &store.Invocation{RunID: "run", Step: 2, Node: "ask", Index: -1, Status: store.InvocationOK, Writes: json.RawMessage(`{"a":2}`)}
	mustRecord(t, s, other0)
	mustRecord(t, s, other2)
	second := &store.Invocation{RunID: "run", Step: 1, Node: "ask", Index: -1,
		Status: store.InvocationOK, Writes: json.RawMessage(`{"answer":"yes"}`), Attempts: 2,
		StartedAt: at(10), EndedAt: at(11)}
	mustRecord(t, s, second)

	invs := mustInvocations(t, s, "run")
	if len(invs) != 3 {
		t.Fatalf("Invocations = %d records, want 3 (re-record replaces)", len(invs))
	}
	// The replacement finished last in step 1, so it comes after index 0.
	checkInvocation(t, invs[0], other0)
	checkInvocation(t, invs[1], second)
	checkInvocation(t, invs[2], other2)
}

func key(inv *store.Invocation) string {
	return fmt.Sprintf("%d/%s/%d", inv.Step, inv.Node, inv.Index)
}

func testInvocationOrder(t *testing.T, s store.Store) {
	mustCreate(t, s, newRun("run", at(0)))
	record := []struct {
		step  int
		node  string
		index int
	}{
		{2, "z", -1}, {1, "b", -1}, {1, "a", 2}, {3, "a", -1}, {1, "a", 0}, {2, "a", -1}, {1, "c", -1},
	}
	for i, r := range record {
		// EndedAt deliberately disagrees with the recording order: the
		// store orders by when it was told, which is the finishing order.
		mustRecord(t, s, &store.Invocation{RunID: "run", Step: r.step, Node: r.node, Index: r.index,
			Status: store.InvocationOK, EndedAt: at(100 - i)})
	}
	want := []string{"1/b/-1", "1/a/2", "1/a/0", "1/c/-1", "2/z/-1", "2/a/-1", "3/a/-1"}
	invs := mustInvocations(t, s, "run")
	got := make([]string, len(invs))
	for i, inv := range invs {
		got[i] = key(inv)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Invocations order = %v, want %v", got, want)
	}
}

func testInvocationRejects(t *testing.T, s store.Store) {
	mustCreate(t, s, newRun("run", at(0)))
	ctx := context.Background()
	for name, inv := range map[string]*store.Invocation{
		"empty run id": {Node: "a"},
		"empty node":   {RunID: "run"},
	} {
		if err := s.RecordInvocation(ctx, inv); err == nil {
			t.Errorf("RecordInvocation(%s) succeeded, want error", name)
		}
	}
}

func checkCheckpoint(t *testing.T, got, want *store.Checkpoint) {
	t.Helper()
	if got.RunID != want.RunID || got.Step != want.Step {
		t.Errorf("checkpoint = %s/%d, want %s/%d", got.RunID, got.Step, want.RunID, want.Step)
	}
	if len(got.Changed) != len(want.Changed) {
		t.Errorf("Changed has %d keys, want %d", len(got.Changed), len(want.Changed))
	}
	for k, v := range want.Changed {
		g, ok := got.Changed[k]
		if !ok {
			t.Errorf("Changed[%q] missing", k)
			continue
		}
		sameBytes(t, "Changed["+k+"]", g, v)
	}
	if !reflect.DeepEqual(got.Next, want.Next) {
		t.Errorf("Next = %#v, want %#v", got.Next, want.Next)
	}
	sameBytes(t, "Joins", got.Joins, want.Joins)
	sameTime(t, "At", got.At, want.At)
}

func testCheckpointRoundTrip(t *testing.T, s store.Store) {
	mustCreate(t, s, newRun("run", at(0)))
	checkMerged(t, s, "run") // none yet
	tests := []struct {
		name string
		cp   *store.Checkpoint
	}{
		{"full", &store.Checkpoint{
			RunID: "run", Step: 1,
			Changed: map[string]json.RawMessage{
				"page":      json.RawMessage(`"<html>\n\tü \u00e9 🚀</html>"`),
				"list":      json.RawMessage(`[1, 2,   {"x" : null}]`),
				"obj":       json.RawMessage(`{"b":1,"a":2}`),
				"num":       json.RawMessage(`1.50e+3`),
				"nothing":   json.RawMessage(`null`),
				"key \"q\"": json.RawMessage(`true`),
			},
			Next:  []string{"b", "a", "c"},
			Joins: json.RawMessage(`{"join1": {"seen": ["a", "b"]}}`),
			At:    at(1),
		}},
		{"empty", &store.Checkpoint{RunID: "run", Step: 2}},
		{"empty next is not nil", &store.Checkpoint{RunID: "run", Step: 3, Next: []string{},
			Changed: map[string]json.RawMessage{"k": json.RawMessage(`""`)}, At: at(3)}},
	}
	for _, tc := range tests {
		if err := s.WriteCheckpoint(context.Background(), tc.cp); err != nil {
			t.Fatalf("WriteCheckpoint(%s): %v", tc.name, err)
		}
	}
	cps := mustCheckpoints(t, s, "run")
	var written []*store.Checkpoint
	for _, tc := range tests {
		written = append(written, tc.cp)
	}
	want := expected(s, written)
	if len(cps) != len(want) {
		t.Fatalf("Checkpoints = %d, want %d", len(cps), len(want))
	}
	for i := range want {
		checkCheckpoint(t, cps[i], want[i])
	}
	checkMerged(t, s, "run")
}

// expected returns what Checkpoints must return for a run whose
// checkpoints were written as want (in step order, each step once): want
// itself, or for a store that merges checkpoints (store.CheckpointMerger)
// one checkpoint with the last step's Step, Next, Joins and At and every
// key's latest value, which replays to the same state.
func expected(s store.Store, want []*store.Checkpoint) []*store.Checkpoint {
	if !store.MergesCheckpoints(s) || len(want) == 0 {
		return want
	}
	m := *want[len(want)-1]
	m.Changed = map[string]json.RawMessage{}
	for _, cp := range want {
		for k, v := range cp.Changed {
			m.Changed[k] = v
		}
	}
	return []*store.Checkpoint{&m}
}

func testCheckpointOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	if store.MergesCheckpoints(s) {
		testMergedCheckpointOrder(t, s)
		return
	}
	for _, step := range []int{3, 1, 10, 2, 0} {
		cp := &store.Checkpoint{RunID: "run", Step: step,
			Changed: map[string]json.RawMessage{"step": json.RawMessage(fmt.Sprint(step))}, At: at(step)}
		if err := s.WriteCheckpoint(ctx, cp); err != nil {
			t.Fatalf("WriteCheckpoint(%d): %v", step, err)
		}
	}
	replaced := &store.Checkpoint{RunID: "run", Step: 2,
		Changed: map[string]json.RawMessage{"other": json.RawMessage(`"x"`)}, Next: []string{"n"}, At: at(50)}
	if err := s.WriteCheckpoint(ctx, replaced); err != nil {
		t.Fatalf("WriteCheckpoint(replace): %v", err)
	}
	cps := mustCheckpoints(t, s, "run")
	var steps []int
	for _, cp := range cps {
		steps = append(steps, cp.Step)
	}
	if want := []int{0, 1, 2, 3, 10}; !reflect.DeepEqual(steps, want) {
		t.Fatalf("Checkpoints steps = %v, want %v", steps, want)
	}
	checkCheckpoint(t, cps[2], replaced)
}

// testMergedCheckpointOrder: a store that merges checkpoints keeps the
// latest step, lets it be rewritten (a rewrite that no longer changes a key
// leaves that key at its earlier step's value) and refuses an older step,
// changing nothing.
func testMergedCheckpointOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	write := func(cp *store.Checkpoint) error { return s.WriteCheckpoint(ctx, cp) }
	cp := func(step int, changed map[string]json.RawMessage) *store.Checkpoint {
		return &store.Checkpoint{RunID: "run", Step: step, Changed: changed, Next: []string{fmt.Sprint("n", step)},
			Joins: json.RawMessage(fmt.Sprintf(`{"j":%d}`, step)), At: at(step)}
	}
	raw := func(v string) json.RawMessage { return json.RawMessage(v) }
	for _, c := range []*store.Checkpoint{
		cp(0, map[string]json.RawMessage{"a": raw("0"), "b": raw(`"b0"`)}),
		cp(1, map[string]json.RawMessage{"a": raw("1")}),
		cp(2, map[string]json.RawMessage{"a": raw("2"), "c": raw("[2]")}),
	} {
		if err := write(c); err != nil {
			t.Fatalf("WriteCheckpoint(%d): %v", c.Step, err)
		}
	}
	rewrite := cp(2, map[string]json.RawMessage{"b": raw(`"b2"`)})
	if err := write(rewrite); err != nil {
		t.Fatalf("WriteCheckpoint(rewrite of 2): %v", err)
	}
	if err := write(cp(1, map[string]json.RawMessage{"a": raw("99")})); !errors.Is(err, store.ErrCheckpointOrder) {
		t.Errorf("WriteCheckpoint(older step 1) = %v, want ErrCheckpointOrder", err)
	}
	want := cp(2, map[string]json.RawMessage{"a": raw("1"), "b": raw(`"b2"`)})
	cps := mustCheckpoints(t, s, "run")
	if len(cps) != 1 {
		t.Fatalf("Checkpoints = %d, want 1 merged", len(cps))
	}
	checkCheckpoint(t, cps[0], want)
}

func testCheckpointRejects(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	bad := []*store.Checkpoint{
		{RunID: "run", Step: 1, Changed: map[string]json.RawMessage{"k": json.RawMessage(`{not json`)}},
		{RunID: "run", Step: 1, Changed: map[string]json.RawMessage{"k": nil}},
		{RunID: "run", Step: 1, Joins: json.RawMessage(`[1,`)},
		{Step: 1},
	}
	for i, cp := range bad {
		if err := s.WriteCheckpoint(ctx, cp); err == nil {
			t.Errorf("WriteCheckpoint(bad #%d) succeeded, want error", i)
		}
	}
	if cps := mustCheckpoints(t, s, "run"); len(cps) != 0 {
		t.Errorf("rejected checkpoints were stored: %d", len(cps))
	}
}

// testCheckpointGrowing writes values that extend the previous ones (a
// message list, text, an object), values that shrink or change, keys that
// skip steps, and a rewrite of the latest step; every value must read back
// exactly. Stores may encode extensions compactly; this is what pins them.
func testCheckpointGrowing(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	var (
		msgs []map[string]string
		text = strings.Repeat("ü", 40)
		obj  = map[string]int{}
		want []*store.Checkpoint
	)
	write := func(cp *store.Checkpoint) {
		t.Helper()
		if err := s.WriteCheckpoint(ctx, cp); err != nil {
			t.Fatalf("WriteCheckpoint(step %d): %v", cp.Step, err)
		}
		if len(want) > 0 && want[len(want)-1].Step == cp.Step {
			want[len(want)-1] = cp
		} else {
			want = append(want, cp)
		}
	}
	marshal := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for step := range 40 {
		msgs = append(msgs, map[string]string{"role": "user", "content": fmt.Sprintf("message %d %s", step, strings.Repeat("x", 50))})
		changed := map[string]json.RawMessage{"messages": marshal(msgs)}
		switch {
		case step%3 == 0: // text grows, sometimes ending mid-way through a UTF-8 sequence change
			text += "é"
			changed["text"] = marshal(text)
		case step%3 == 1:
			text = text[:len(text)-2] + "è" // shares the first byte of é's encoding
			changed["text"] = marshal(text)
		}
		if step%5 == 0 {
			obj[fmt.Sprintf("k%03d", step)] = step
			changed["obj"] = marshal(obj)
		}
		if step == 20 { // shrinks to a prefix of itself
			msgs = msgs[:5]
			changed["messages"] = marshal(msgs)
		}
		changed["counter"] = marshal(step)
		write(&store.Checkpoint{RunID: "run", Step: step, Changed: changed, At: at(step)})
		if step == 30 { // rewrite the latest step without the list, then continue
			write(&store.Checkpoint{RunID: "run", Step: step,
				Changed: map[string]json.RawMessage{"counter": marshal(-step)}, At: at(step)})
			msgs = msgs[:len(msgs)-1]
		}
	}
	cps := mustCheckpoints(t, s, "run")
	want = expected(s, want)
	if len(cps) != len(want) {
		t.Fatalf("Checkpoints = %d, want %d", len(cps), len(want))
	}
	for i := range want {
		checkCheckpoint(t, cps[i], want[i])
	}
	checkMerged(t, s, "run")
}

func testIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("a", at(0)))
	mustCreate(t, s, newRun("b", at(1)))
	mustRecord(t, s, &store.Invocation{RunID: "a", Step: 1, Node: "n", Index: -1, Status: store.InvocationOK})
	if err := s.WriteCheckpoint(ctx, &store.Checkpoint{RunID: "a", Step: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, "a", store.StatusCompleted, "", at(9)); err != nil {
		t.Fatal(err)
	}
	if n := len(mustInvocations(t, s, "b")); n != 0 {
		t.Errorf("run b sees %d invocations of run a", n)
	}
	if n := len(mustCheckpoints(t, s, "b")); n != 0 {
		t.Errorf("run b sees %d checkpoints of run a", n)
	}
	if got := mustGet(t, s, "b"); got.Status != store.StatusRunning || !got.EndedAt.IsZero() {
		t.Errorf("finishing run a changed run b: %s %v", got.Status, got.EndedAt)
	}
}

// testCopies checks that stores neither keep the caller's buffers nor hand
// out their own: the executor reuses buffers and callers may edit results.
func testCopies(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun("run", at(0))
	wantRun := *r
	wantRun.Source = bytes.Clone(r.Source)
	wantRun.Inputs = bytes.Clone(r.Inputs)
	mustCreate(t, s, r)
	r.Source[0], r.Inputs[0] = 'X', 'X'

	inv := &store.Invocation{RunID: "run", Step: 1, Node: "n", Index: -1, Status: store.InvocationOK,
		Writes: json.RawMessage(`{"k":"v"}`)}
	mustRecord(t, s, inv)
	inv.Writes[2] = 'X'

	cp := &store.Checkpoint{RunID: "run", Step: 1,
		Changed: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)},
		Next:    []string{"a"}, Joins: json.RawMessage(`{"j":1}`)}
	if err := s.WriteCheckpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	cp.Changed["k"][1] = 'X'
	cp.Changed["extra"] = json.RawMessage(`1`)
	cp.Next[0] = "X"
	cp.Joins[2] = 'X'

	got := mustGet(t, s, "run")
	checkRun(t, got, &wantRun)
	got.Source[0], got.Inputs[0] = 'Y', 'Y'
	checkRun(t, mustGet(t, s, "run"), &wantRun)

	invs := mustInvocations(t, s, "run")
	sameBytes(t, "Writes", invs[0].Writes, []byte(`{"k":"v"}`))
	invs[0].Writes[2] = 'Y'
	sameBytes(t, "Writes after editing a result", mustInvocations(t, s, "run")[0].Writes, []byte(`{"k":"v"}`))

	want := &store.Checkpoint{RunID: "run", Step: 1,
		Changed: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)},
		Next:    []string{"a"}, Joins: json.RawMessage(`{"j":1}`)}
	cps := mustCheckpoints(t, s, "run")
	checkCheckpoint(t, cps[0], want)
	cps[0].Changed["k"][1] = 'Y'
	cps[0].Next[0] = "Y"
	cps[0].Joins[2] = 'Y'
	checkCheckpoint(t, mustCheckpoints(t, s, "run")[0], want)
}

// testWritesOutliveCancel checks that writes complete with a cancelled
// context: after Ctrl-C the executor still records the invocations that
// finished and the run's final status.
func testWritesOutliveCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CreateRun(ctx, newRun("run", at(0))); err != nil {
		t.Fatalf("CreateRun(cancelled ctx): %v", err)
	}
	inv := &store.Invocation{RunID: "run", Step: 1, Node: "n", Index: -1, Status: store.InvocationOK}
	if err := s.RecordInvocation(ctx, inv); err != nil {
		t.Errorf("RecordInvocation(cancelled ctx): %v", err)
	}
	if err := s.WriteCheckpoint(ctx, &store.Checkpoint{RunID: "run", Step: 1}); err != nil {
		t.Errorf("WriteCheckpoint(cancelled ctx): %v", err)
	}
	if err := s.FinishRun(ctx, "run", store.StatusCancelled, "interrupted by signal", at(1)); err != nil {
		t.Errorf("FinishRun(cancelled ctx): %v", err)
	}
	if err := s.SetStatus(ctx, "run", store.StatusRunning); err != nil {
		t.Errorf("SetStatus(cancelled ctx): %v", err)
	}
	if n := len(mustInvocations(t, s, "run")); n != 1 {
		t.Errorf("Invocations = %d, want 1", n)
	}
}

// testConcurrentRecord records from many goroutines at once while others
// read, as the executor does for a step's concurrent nodes; run it with
// -race.
func testConcurrentRecord(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	const workers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each+workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 64) // reused across calls, like an executor buffer
			for i := range each {
				buf = fmt.Appendf(buf[:0], `{"w":%d,"i":%d}`, w, i)
				inv := &store.Invocation{RunID: "run", Step: w % 3, Node: fmt.Sprintf("n%d", w), Index: i,
					Status: store.InvocationOK, Writes: buf, Attempts: 1}
				if err := s.RecordInvocation(ctx, inv); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := s.Invocations(ctx, "run"); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListRuns(ctx, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call: %v", err)
	}
	invs := mustInvocations(t, s, "run")
	if len(invs) != workers*each {
		t.Fatalf("Invocations = %d, want %d", len(invs), workers*each)
	}
	seen := make(map[string]bool)
	lastStep := -1
	for _, inv := range invs {
		if inv.Step < lastStep {
			t.Fatalf("Invocations not in step order: step %d after %d", inv.Step, lastStep)
		}
		lastStep = inv.Step
		var w struct{ W, I int }
		if err := json.Unmarshal(inv.Writes, &w); err != nil {
			t.Fatalf("Writes %q: %v", inv.Writes, err)
		}
		if inv.Node != fmt.Sprintf("n%d", w.W) || inv.Index != w.I {
			t.Errorf("invocation %s holds writes of n%d/%d: buffers were shared", key(inv), w.W, w.I)
		}
		seen[key(inv)] = true
	}
	if len(seen) != workers*each {
		t.Errorf("distinct invocations = %d, want %d", len(seen), workers*each)
	}
}

// testCommitStep: store.CommitSteps (one transaction where the store
// supports it) records the invocations and the checkpoint like the
// separate calls, growing values included, and an unknown run writes
// nothing.
func testCommitStep(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	var batch []store.StepRecord
	for step := 1; step <= 3; step++ {
		inv := &store.Invocation{RunID: "run", Step: step, Node: "n", Index: -1, Status: store.InvocationOK,
			Writes: json.RawMessage(fmt.Sprintf(`{"i":%d}`, step)), Attempts: 1, StartedAt: at(step), EndedAt: at(step)}
		list := make([]string, step)
		for i := range list {
			list[i] = fmt.Sprintf("%q", fmt.Sprint("item", i))
		}
		cp := &store.Checkpoint{RunID: "run", Step: step, Next: []string{"n"}, At: at(step),
			Changed: map[string]json.RawMessage{"i": json.RawMessage(fmt.Sprint(step)), "list": json.RawMessage("[" + strings.Join(list, ",") + "]")}}
		batch = append(batch, store.StepRecord{Invocations: []*store.Invocation{inv}, Checkpoint: cp})
	}
	// Steps 1 and 2 in one commit, step 3 alone: deltas of growing values
	// must chain across and within commits.
	if err := store.CommitSteps(ctx, s, batch[:2]); err != nil {
		t.Fatalf("CommitSteps(1-2): %v", err)
	}
	if err := store.CommitSteps(ctx, s, batch[2:]); err != nil {
		t.Fatalf("CommitSteps(3): %v", err)
	}
	invs, err := s.Invocations(ctx, "run")
	if err != nil || len(invs) != 3 || string(invs[2].Writes) != `{"i":3}` {
		t.Fatalf("Invocations = %v, %v", invs, err)
	}
	cps := mustCheckpoints(t, s, "run")
	var written []*store.Checkpoint
	for _, r := range batch {
		written = append(written, r.Checkpoint)
	}
	if want := expected(s, written); len(cps) != len(want) {
		t.Fatalf("Checkpoints = %d, want %d", len(cps), len(want))
	}
	if last := cps[len(cps)-1]; last.Step != 3 || string(last.Changed["i"]) != "3" || string(last.Changed["list"]) != `["item0","item1","item2"]` {
		t.Fatalf("last checkpoint: step %d, %v", last.Step, last.Changed)
	}
	err = store.CommitSteps(ctx, s, []store.StepRecord{{
		Invocations: []*store.Invocation{{RunID: "nope", Step: 1, Node: "n", Index: -1, Status: store.InvocationOK}},
		Checkpoint:  &store.Checkpoint{RunID: "nope", Step: 1}}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CommitStep of an unknown run: %v, want ErrNotFound", err)
	}
	if _, err := s.Checkpoints(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown run has checkpoints after a failed CommitStep: %v", err)
	}
}

// testCommitLargeBatch: a batch larger than any internal chunking (150
// steps, 0-3 invocations each, one identity recorded twice) reads back
// exactly like the same records written call by call into another run.
func testCommitLargeBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	records := func(runID string) []store.StepRecord {
		var batch []store.StepRecord
		for step := 1; step <= 150; step++ {
			var invs []*store.Invocation
			for i := range step % 4 {
				invs = append(invs, &store.Invocation{RunID: runID, Step: step, Node: fmt.Sprint("n", i%2), Index: i,
					Status: store.InvocationOK, Writes: json.RawMessage(fmt.Sprintf(`{"s":%d,"i":%d}`, step, i)),
					Attempts: 1 + i, StartedAt: at(step), EndedAt: at(step + 1)})
			}
			if step == 7 { // re-recorded: moves to the end of its step
				again := *invs[0]
				again.Writes = json.RawMessage(`{"again":true}`)
				invs = append(invs, &again)
			}
			acc := make([]string, step)
			for i := range acc {
				acc[i] = fmt.Sprint(i)
			}
			cp := &store.Checkpoint{RunID: runID, Step: step, Next: []string{"n0", "n1"}, At: at(step),
				Changed: map[string]json.RawMessage{"step": json.RawMessage(fmt.Sprint(step)),
					"acc": json.RawMessage("[" + strings.Join(acc, ",") + "]")}}
			batch = append(batch, store.StepRecord{Invocations: invs, Checkpoint: cp})
		}
		return batch
	}
	mustCreate(t, s, newRun("batched", at(0)))
	mustCreate(t, s, newRun("single", at(0)))
	if err := store.CommitSteps(ctx, s, records("batched")); err != nil {
		t.Fatalf("CommitSteps: %v", err)
	}
	for _, r := range records("single") {
		for _, inv := range r.Invocations {
			mustRecord(t, s, inv)
		}
		if err := s.WriteCheckpoint(ctx, r.Checkpoint); err != nil {
			t.Fatalf("WriteCheckpoint: %v", err)
		}
	}
	got, want := mustInvocations(t, s, "batched"), mustInvocations(t, s, "single")
	if len(got) != len(want) || len(want) != 225 {
		t.Fatalf("batched run has %d invocations, call by call %d, want 225", len(got), len(want))
	}
	for i := range want {
		w := *want[i]
		w.RunID = "batched"
		checkInvocation(t, got[i], &w)
	}
	gotCP, wantCP := mustCheckpoints(t, s, "batched"), mustCheckpoints(t, s, "single")
	n := 150
	if store.MergesCheckpoints(s) {
		n = 1
	}
	if len(gotCP) != n || len(wantCP) != n {
		t.Fatalf("checkpoints: batched %d, call by call %d, want %d", len(gotCP), len(wantCP), n)
	}
	for i := range wantCP {
		w := *wantCP[i]
		w.RunID = "batched"
		checkCheckpoint(t, gotCP[i], &w)
	}
}

// testRecordInvocations: store.RecordInvocations keeps the order of its
// batch (a repeated identity moves to the end), and a record of an unknown
// run fails without losing the others.
func testRecordInvocations(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	inv := func(runID string, i int) *store.Invocation {
		return &store.Invocation{RunID: runID, Step: 1, Node: "n", Index: i, Status: store.InvocationOK,
			Writes: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Attempts: 1, StartedAt: at(i), EndedAt: at(i + 1)}
	}
	var batch []*store.Invocation
	for i := range 100 {
		batch = append(batch, inv("run", i))
	}
	again := inv("run", 3)
	again.Writes = json.RawMessage(`{"again":true}`)
	batch = append(batch, again)
	if err := store.RecordInvocations(ctx, s, batch); err != nil {
		t.Fatalf("RecordInvocations: %v", err)
	}
	invs := mustInvocations(t, s, "run")
	if len(invs) != 100 {
		t.Fatalf("%d invocations, want 100", len(invs))
	}
	for k, got := range invs[:99] {
		want := k
		if k >= 3 {
			want = k + 1
		}
		checkInvocation(t, got, inv("run", want))
	}
	checkInvocation(t, invs[99], again)

	mixed := []*store.Invocation{inv("run", 200), inv("nope", 201), inv("run", 202)}
	if err := store.RecordInvocations(ctx, s, mixed); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RecordInvocations with an unknown run: %v, want ErrNotFound", err)
	}
	invs = mustInvocations(t, s, "run")
	if len(invs) != 102 || invs[100].Index != 200 || invs[101].Index != 202 {
		t.Errorf("after a batch with one bad record: %d invocations, last %s", len(invs), fmtInv(invs[len(invs)-1]))
	}
}

// testInvocationPaths: an invocation's identity is its path (SPEC §9.1).
// Records sharing step, node and index but not path (subgraph children,
// tool calls) are all kept; recording a path again replaces its record;
// a record without a path gets the one of (Step, Node, Index).
func testInvocationPaths(t *testing.T, s store.Store) {
	mustCreate(t, s, newRun("run", at(0)))
	inv := func(path string, step int, node string, index int, writes string) *store.Invocation {
		return &store.Invocation{RunID: "run", Path: path, Step: step, Node: node, Index: index,
			Status: store.InvocationOK, Writes: json.RawMessage(writes), Attempts: 1, StartedAt: at(step), EndedAt: at(step + 1)}
	}
	recorded := []*store.Invocation{
		inv("3/approve_each[0]/2/charge[4]", 3, "charge", 4, `{"c":0}`),
		inv("3/approve_each[1]/2/charge[4]", 3, "charge", 4, `{"c":1}`),
		inv("5/tools/tool:call_1", 5, "refund", -1, `{"r":"A"}`),
		inv("5/tools/tool:call_2", 5, "refund", -1, `{"r":"B"}`),
		inv("", 2, "fetch", 3, `{"f":3}`),
		inv("", 2, "plain", -1, `{"p":1}`),
		inv("5/tools/tool:call_1", 5, "refund", -1, `{"r":"A2"}`), // replaces call_1, moves last in step 5
		inv("2/fetch[3]", 2, "fetch", 3, `{"f":"again"}`),         // the derived path of an earlier record
	}
	for _, r := range recorded {
		mustRecord(t, s, r)
	}
	want := []*store.Invocation{
		inv("2/plain", 2, "plain", -1, `{"p":1}`),
		inv("2/fetch[3]", 2, "fetch", 3, `{"f":"again"}`),
		inv("3/approve_each[0]/2/charge[4]", 3, "charge", 4, `{"c":0}`),
		inv("3/approve_each[1]/2/charge[4]", 3, "charge", 4, `{"c":1}`),
		inv("5/tools/tool:call_2", 5, "refund", -1, `{"r":"B"}`),
		inv("5/tools/tool:call_1", 5, "refund", -1, `{"r":"A2"}`),
	}
	got := mustInvocations(t, s, "run")
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("got %s", fmtInv(g))
		}
		t.Fatalf("Invocations = %d records, want %d", len(got), len(want))
	}
	for i := range want {
		checkInvocation(t, got[i], want[i])
	}
	// The batch paths key by path too.
	batch := []*store.Invocation{
		inv("7/sub/1/n", 7, "n", -1, `{"b":1}`),
		inv("7/sub/2/n", 7, "n", -1, `{"b":2}`),
		inv("7/sub/1/n", 7, "n", -1, `{"b":3}`),
	}
	if err := store.RecordInvocations(context.Background(), s, batch); err != nil {
		t.Fatalf("RecordInvocations: %v", err)
	}
	err := store.CommitSteps(context.Background(), s, []store.StepRecord{{
		Invocations: []*store.Invocation{inv("8/sub/1/n", 8, "n", -1, `{"s":1}`), inv("8/sub/2/n", 8, "n", -1, `{"s":2}`)},
		Checkpoint:  &store.Checkpoint{RunID: "run", Step: 8},
	}})
	if err != nil {
		t.Fatalf("CommitSteps: %v", err)
	}
	got = mustInvocations(t, s, "run")[len(want):]
	wantTail := []*store.Invocation{batch[1], batch[2], inv("8/sub/1/n", 8, "n", -1, `{"s":1}`), inv("8/sub/2/n", 8, "n", -1, `{"s":2}`)}
	if len(got) != len(wantTail) {
		t.Fatalf("after batches: %d more records, want %d", len(got), len(wantTail))
	}
	for i := range wantTail {
		checkInvocation(t, got[i], wantTail[i])
	}
}

// testSubgraphSources: the subgraph workflows recorded with a run come
// back from GetRun byte for byte, and neither side's buffers are shared.
func testSubgraphSources(t *testing.T, s store.Store) {
	sources := map[string][]byte{
		"/work/flows/child.yaml":         []byte("name: child\nnodes:\n  a: {type: set}\n"),
		"/work/flows/nested/grand.yaml":  []byte("name: grand\n# ü 🚀\n"),
		"/work/flows/with space?#&.yaml": {0, 1, 2, 255},
		"/work/flows/empty.yaml":         {},
	}
	r := newRun("sub", at(0))
	r.Subgraphs = map[string][]byte{}
	for k, v := range sources {
		r.Subgraphs[k] = bytes.Clone(v)
	}
	mustCreate(t, s, r)
	r.Subgraphs["/work/flows/child.yaml"][0] = 'X'
	r.Subgraphs["/work/flows/added.yaml"] = []byte("x")

	check := func(got *store.Run) {
		t.Helper()
		if len(got.Subgraphs) != len(sources) {
			t.Errorf("Subgraphs has %d entries, want %d: %v", len(got.Subgraphs), len(sources), got.Subgraphs)
		}
		for k, v := range sources {
			g, ok := got.Subgraphs[k]
			if !ok {
				t.Errorf("Subgraphs[%q] missing", k)
				continue
			}
			sameBytes(t, "Subgraphs["+k+"]", g, v)
		}
	}
	got := mustGet(t, s, "sub")
	check(got)
	got.Subgraphs["/work/flows/child.yaml"][0] = 'Y'
	check(mustGet(t, s, "sub"))

	mustCreate(t, s, newRun("nosub", at(1)))
	if got := mustGet(t, s, "nosub"); len(got.Subgraphs) != 0 {
		t.Errorf("a run created without subgraphs has %d", len(got.Subgraphs))
	}
}

// deadPID returns the pid of a process that has exited and been reaped,
// so no process has it (until the system reuses it, which takes a full
// cycle of the pid space).
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run true: %v", err)
	}
	return cmd.Process.Pid
}

// testLeases: AcquireLease takes a free run, refuses a live holder with a
// *LeaseError naming it, takes over a holder that died (expired, or on
// this host with its pid gone) at once, and lets an owner re-acquire;
// only the owner renews or releases; readers see a running run without a
// live lease as stale (SPEC §9.3).
func testLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	status := func(id string) store.Status { t.Helper(); return mustGet(t, s, id).Status }
	r := &store.Run{ID: "free", Status: store.StatusRunning, StartedAt: at(0)}
	mustCreate(t, s, r)
	if st := status("free"); st != store.StatusStale {
		t.Errorf("running run without a lease: status %s, want stale", st)
	}

	first := liveLease("first")
	if err := s.AcquireLease(ctx, "free", *first); err != nil {
		t.Fatalf("AcquireLease on a free run: %v", err)
	}
	got := mustGet(t, s, "free")
	checkLease(t, got.Lease, first)
	if got.Status != store.StatusRunning {
		t.Errorf("status with a live lease = %s, want running", got.Status)
	}

	err := s.AcquireLease(ctx, "free", *liveLease("second"))
	var le *store.LeaseError
	if !errors.As(err, &le) {
		t.Fatalf("AcquireLease while a live owner holds the run = %v, want *LeaseError", err)
	}
	if le.RunID != "free" || le.Holder.Owner != "first" || le.Holder.PID != os.Getpid() || le.Holder.Host != store.Hostname() {
		t.Errorf("LeaseError names %+v of run %s, want the first owner", le.Holder, le.RunID)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(os.Getpid())) || !strings.Contains(msg, store.Hostname()) {
		t.Errorf("LeaseError message %q does not name the holder's pid and host", msg)
	}
	checkLease(t, mustGet(t, s, "free").Lease, first)

	// The owner itself re-acquires (e.g. a resume in the same process).
	again := liveLease("first")
	again.Expires = again.Expires.Add(time.Minute)
	if err := s.AcquireLease(ctx, "free", *again); err != nil {
		t.Errorf("AcquireLease by the holder again: %v", err)
	}
	checkLease(t, mustGet(t, s, "free").Lease, again)

	// Renewal: only the owner.
	if err := s.RenewLease(ctx, "free", "second", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RenewLease by a non-owner = %v, want ErrLeaseLost", err)
	}
	renewed := *again
	renewed.Expires = time.Now().Add(2 * time.Hour).Round(time.Microsecond)
	if err := s.RenewLease(ctx, "free", "first", renewed.Expires); err != nil {
		t.Errorf("RenewLease by the owner: %v", err)
	}
	checkLease(t, mustGet(t, s, "free").Lease, &renewed)

	// Release: a no-op for a non-owner, clears it for the owner.
	if err := s.ReleaseLease(ctx, "free", "second"); err != nil {
		t.Errorf("ReleaseLease by a non-owner: %v, want a no-op", err)
	}
	checkLease(t, mustGet(t, s, "free").Lease, &renewed)
	if err := s.ReleaseLease(ctx, "free", "first"); err != nil {
		t.Errorf("ReleaseLease by the owner: %v", err)
	}
	got = mustGet(t, s, "free")
	checkLease(t, got.Lease, nil)
	if got.Status != store.StatusStale {
		t.Errorf("status after release = %s, want stale", got.Status)
	}
	if err := s.RenewLease(ctx, "free", "first", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RenewLease after release = %v, want ErrLeaseLost", err)
	}

	// Holders that died, recorded at CreateRun: each run is stale and
	// taken over at once.
	dead := []struct {
		name  string
		lease store.Lease
	}{
		{"expired on another host", store.Lease{Owner: "gone", PID: 1, Host: "another-host.invalid", Expires: time.Now().Add(-time.Second)}},
		// This process's pid, for a lease that expired before this process
		// started: the owner died and its pid went to another process.
		{"expired on this host, pid reused", store.Lease{Owner: "gone", PID: os.Getpid(), Host: store.Hostname(), Expires: time.Now().Add(-48 * time.Hour)}},
		{"pid gone on this host", store.Lease{Owner: "gone", PID: deadPID(t), Host: store.Hostname(), Expires: time.Now().Add(time.Hour)}},
	}
	for i, tc := range dead {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint("dead", i)
			r := newRun(id, at(i))
			r.Lease = &tc.lease
			mustCreate(t, s, r)
			got := mustGet(t, s, id)
			if got.Status != store.StatusStale {
				t.Errorf("status = %s, want stale", got.Status)
			}
			checkLease(t, got.Lease, &tc.lease)
			next := liveLease("next")
			if err := s.AcquireLease(ctx, id, *next); err != nil {
				t.Fatalf("AcquireLease of a dead holder's run: %v", err)
			}
			checkLease(t, mustGet(t, s, id).Lease, next)
			if err := s.RenewLease(ctx, id, "gone", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrLeaseLost) {
				t.Errorf("RenewLease by the replaced owner = %v, want ErrLeaseLost", err)
			}
		})
	}
	// On this host a lease's owner whose pid runs is alive even when its
	// lease expired (SPEC §9.3): a process stopped or hung past its lease
	// still holds the run, and nobody else may execute it.
	stopped := newRun("stopped", at(8))
	stopped.Lease = &store.Lease{Owner: "stopped", PID: os.Getpid(), Host: store.Hostname(), Expires: time.Now().Add(-time.Second)}
	mustCreate(t, s, stopped)
	if st := status("stopped"); st != store.StatusRunning {
		t.Errorf("expired lease of a running pid on this host: status %s, want running", st)
	}
	if err := s.AcquireLease(ctx, "stopped", *liveLease("local")); !errors.As(err, &le) || le.Holder.Owner != "stopped" {
		t.Errorf("AcquireLease over a running pid's expired lease = %v, want *LeaseError naming stopped", err)
	}

	// A live lease on another host is never judged by this host's pids.
	other := newRun("other-host", at(9))
	other.Lease = &store.Lease{Owner: "remote", PID: deadPID(t), Host: "another-host.invalid", Expires: time.Now().Add(time.Hour)}
	mustCreate(t, s, other)
	if st := status("other-host"); st != store.StatusRunning {
		t.Errorf("live lease on another host: status %s, want running", st)
	}
	if err := s.AcquireLease(ctx, "other-host", *liveLease("local")); !errors.As(err, &le) || le.Holder.Owner != "remote" {
		t.Errorf("AcquireLease over another host's live lease = %v, want *LeaseError naming remote", err)
	}

	// Finishing the run clears the lease; ListRuns reports leases too.
	if err := s.FinishRun(ctx, "other-host", store.StatusCompleted, "", at(10)); err != nil {
		t.Fatal(err)
	}
	runs, err := s.ListRuns(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		switch r.ID {
		case "other-host":
			if r.Lease != nil || r.Status != store.StatusCompleted {
				t.Errorf("finished run listed with lease %+v, status %s", r.Lease, r.Status)
			}
		case "dead0":
			if r.Lease == nil || r.Lease.Owner != "next" || r.Status != store.StatusRunning {
				t.Errorf("ListRuns: run dead0 has lease %+v, status %s; want next's, running", r.Lease, r.Status)
			}
		case "free":
			if r.Status != store.StatusStale {
				t.Errorf("ListRuns: run free is %s, want stale", r.Status)
			}
		}
	}

	for name, err := range map[string]error{
		"AcquireLease": s.AcquireLease(ctx, "nope", *liveLease("x")),
		"RenewLease":   s.RenewLease(ctx, "nope", "x", time.Now()),
		"ReleaseLease": s.ReleaseLease(ctx, "nope", "x"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(unknown run) = %v, want ErrNotFound", name, err)
		}
	}
	if err := s.AcquireLease(ctx, "free", store.Lease{PID: 1, Expires: time.Now().Add(time.Hour)}); err == nil {
		t.Error("AcquireLease with an empty owner succeeded")
	}
}

// testLeaseRace: goroutines racing for one free run's lease: exactly one
// wins; every other one is told who did.
func testLeaseRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, &store.Run{ID: "race", Status: store.StatusRunning, StartedAt: at(0)})
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.AcquireLease(ctx, "race", *liveLease(fmt.Sprint("racer", i)))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("racers %d and %d both acquired the lease", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no racer acquired the lease: %v", errs)
	}
	want := fmt.Sprint("racer", winner)
	for i, err := range errs {
		var le *store.LeaseError
		if i != winner && (!errors.As(err, &le) || le.Holder.Owner != want) {
			t.Errorf("racer %d: %v, want a *LeaseError naming %s", i, err, want)
		}
	}
	if got := mustGet(t, s, "race").Lease; got == nil || got.Owner != want {
		t.Errorf("stored lease %+v, want %s's", got, want)
	}
}

// runCase runs fn as subtest name on a new store from open, closed (and
// the close checked) when the subtest ends.
func runCase[S interface{ Close() error }](t *testing.T, name string, open func(*testing.T) S, fn func(*testing.T, S)) {
	t.Run(name, func(t *testing.T) {
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		fn(t, s)
	})
}
