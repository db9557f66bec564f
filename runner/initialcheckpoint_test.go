package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lgx-run/lgx/store"
	"unsafe"
)

// initialCheckpointWorkflow charges three customers in parallel, then
// once more: two steps with side effects after the step-0 checkpoint.
const initialCheckpointWorkflow = `
lgx: 1
name: charges
state:
  customers: {type: list, default: [cus_1, cus_2, cus_3]}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  charge:
    type: http_fetch
    for_each: ${{ state.customers }}
    with: {url: "URL/charge", method: POST, json: {customer: "${{ item }}"}}
    output: {n: 1}
  total:
    type: http_fetch
    with: {url: "URL/charge", method: POST, json: {total: "${{ state.n }}"}}
edges:
  - {from: START, to: charge}
  - {from: charge, to: total}
`

// TestInitialCheckpoint: a new run's step-0 checkpoint (the whole
// initial state) is durable before anything runs. Nothing of step 1 is
// recorded before it, a store that cannot write it fails the run before
// any request is sent, and a run that died before it resumes from its
// recorded inputs with the keys it would have sent.
func TestInitialCheckpoint(t *testing.T) {
	keys := []string{"lgx-R-1/charge[0]", "lgx-R-1/charge[1]", "lgx-R-1/charge[2]", "lgx-R-2/total"}

	t.Run("committed before anything of step 1", func(t *testing.T) {
		pay := newPayments(t)
		g := compileYAML(t, strings.ReplaceAll(initialCheckpointWorkflow, "URL", pay.srv.URL))
		st := &orderStore{Store: store.NewMemory()}
		res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R"})
		if err != nil || res.State["n"] != 3 {
			t.Fatalf("run: %v, state %v", err, res.State)
		}
		// Step 1's three records go to the recorder, step 2's one with
		// its checkpoint.
		want := []string{"steps 0", "invocations 3", "steps 1", "steps 2"}
		if got := st.log(); !slices.Equal(got, want) {
			t.Errorf("store commits %q, want %q", got, want)
		}
		pay.check(t, keys, true)
		// The runner encoded every value itself: the store need not
		// validate them again.
		if st.unencoded != 0 {
			t.Errorf("%d checkpoints not marked Encoded", st.unencoded)
		}
	})

	t.Run("a failure to write it fails the run before anything is sent", func(t *testing.T) {
		pay := newPayments(t)
		g := compileYAML(t, strings.ReplaceAll(initialCheckpointWorkflow, "URL", pay.srv.URL))
		st := &orderStore{Store: store.NewMemory(), failSteps: true}
		res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R"})
		if err == nil || !strings.Contains(err.Error(), "store: record steps up to 0: disk full") {
			t.Fatalf("err = %v, want the step-0 checkpoint's failure", err)
		}
		if res.Status != store.StatusFailed || res.Steps != 0 {
			t.Errorf("status %s after %d steps, want failed before step 1", res.Status, res.Steps)
		}
		run, gerr := st.GetRun(context.Background(), "R")
		if gerr != nil || run.Status != store.StatusFailed {
			t.Errorf("recorded run %+v (%v), want status failed", run, gerr)
		}
		pay.check(t, nil, true)
	})

	t.Run("a run that died before it resumes with the same keys", func(t *testing.T) {
		pay := newPayments(t)
		g := compileYAML(t, strings.ReplaceAll(initialCheckpointWorkflow, "URL", pay.srv.URL))
		ran := store.NewMemory()
		if _, err := Run(context.Background(), g, Options{Store: ran, Environ: []string{}, RunID: "R"}); err != nil {
			t.Fatal(err)
		}
		// What a kill -9 between creating the run and writing its first
		// checkpoint leaves: the run's record and nothing else. Resume
		// starts over from the recorded inputs, and must send the keys
		// of the uninterrupted run, no other.
		rec, err := ran.GetRun(context.Background(), "R")
		if err != nil {
			t.Fatal(err)
		}
		died := store.NewMemory()
		left := &store.Run{ID: rec.ID, Workflow: rec.Workflow, File: rec.File, Source: rec.Source,
			Inputs: rec.Inputs, Status: store.StatusRunning, StartedAt: rec.StartedAt}
		if err := died.CreateRun(context.Background(), left); err != nil {
			t.Fatal(err)
		}
		res, err := Resume(context.Background(), died, "R", Options{Environ: []string{}})
		if err != nil || res.Status != store.StatusCompleted || res.State["n"] != 3 {
			t.Fatalf("resume: %v, status %s, state %v", err, res.Status, res.State)
		}
		// Every key again, and no other (the server answers the repeats
		// from its idempotency records).
		pay.check(t, keys, false)
		pay.mu.Lock()
		defer pay.mu.Unlock()
		for _, k := range keys {
			if pay.sent[k] != 2 {
				t.Errorf("key %s sent %d times, want twice (the run, then the resume)", k, pay.sent[k])
			}
		}
	})
}

// TestInitialCheckpointReusesInputs: the step-0 checkpoint gives the
// store the bytes the run's record was given for an input whose state
// value is that input, not a second encoding of it (0.15 ms for 2,000
// URLs, before the first request); a value the state holds in another
// form (an integer given as 5.0) or a default is encoded on its own. The
// values are those a fresh encoding gives, either way.
func TestInitialCheckpointReusesInputs(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
state:
  xs: {type: list}
  n: {type: integer}
  d: {type: list, default: [a, b]}
nodes:
  s: {type: set, output: {n: 1}}
edges:
  - {from: START, to: s}
`)
	xs := []any{"http://127.0.0.1/1", "http://127.0.0.1/2"}
	st := &orderStore{Store: store.NewMemory()}
	if _, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, Inputs: map[string]any{"xs": xs, "n": 5.0}}); err != nil {
		t.Fatal(err)
	}
	within := func(b, of []byte) bool {
		if len(b) == 0 || len(of) == 0 {
			return false
		}
		p, lo, hi := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&of[0])), uintptr(unsafe.Pointer(&of[len(of)-1]))
		return p >= lo && p <= hi
	}
	for key, want := range map[string]struct {
		json   string
		shared bool
	}{"xs": {`["http://127.0.0.1/1","http://127.0.0.1/2"]`, true}, "n": {"5", false}, "d": {`["a","b"]`, false}} {
		got := st.cp0[key]
		if string(got) != want.json {
			t.Errorf("step 0: %s = %s, want %s", key, got, want.json)
		}
		if within(got, st.inputs) != want.shared {
			t.Errorf("step 0: %s given as the run record's bytes = %v, want %v", key, !want.shared, want.shared)
		}
	}
}

// TestResumeWithStepZeroAgainstInputs: in SQLite, the step-0 checkpoint
// stores an input's value as a reference to the run's inputs; a resume
// from another opening of the store (another process) rebuilds the state
// from it, and the list grows on from there.
func TestResumeWithStepZeroAgainstInputs(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
state:
  xs: {type: list, reducer: append}
  ok: {type: boolean, default: false}
nodes:
  ask: {type: interrupt, with: {message: "go?"}, output: {ok: "${{ result.ok }}"}}
  add: {type: set, output: {xs: last}}
edges:
  - {from: START, to: ask}
  - {from: ask, to: add}
`)
	xs := make([]any, 500)
	for i := range xs {
		xs[i] = fmt.Sprintf("http://127.0.0.1:8080/item/%d", i)
	}
	path := filepath.Join(t.TempDir(), "lgx.db")
	st, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, Inputs: map[string]any{"xs": xs}})
	st.Close()
	if err != nil || res.Status != store.StatusInterrupted {
		t.Fatalf("run: %v, %v", err, res.Status)
	}
	st, err = store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cps, err := st.Checkpoints(context.Background(), res.RunID)
	if err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints: %d, %v", len(cps), err)
	}
	want, _ := json.Marshal(xs)
	if string(cps[0].Changed["xs"]) != string(want) {
		t.Fatalf("step 0: xs = %.80s…, want the inputs' list", cps[0].Changed["xs"])
	}
	res, err = Resume(context.Background(), st, res.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": true}}})
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("resume: %v, %v", err, res.Status)
	}
	got, _ := res.State["xs"].([]any)
	if len(got) != len(xs)+1 || got[0] != xs[0] || got[len(xs)-1] != xs[len(xs)-1] || got[len(xs)] != "last" {
		t.Errorf("xs after the resume: %d elements, want the %d inputs and \"last\"", len(got), len(xs))
	}
}

// orderStore logs the order of step and invocation commits; its step
// commits fail when failSteps is set.
type orderStore struct {
	store.Store
	failSteps bool
	mu        sync.Mutex
	calls     []string
	unencoded int                        // checkpoints not marked store.Checkpoint.Encoded
	inputs    []byte                     // the run record's, as CreateRun was given them
	cp0       map[string]json.RawMessage // the step-0 checkpoint's values, as given
}

func (s *orderStore) CreateRun(ctx context.Context, r *store.Run) error {
	s.mu.Lock()
	s.inputs = r.Inputs
	s.mu.Unlock()
	return s.Store.CreateRun(ctx, r)
}

func (s *orderStore) CommitSteps(ctx context.Context, steps []store.StepRecord) error {
	if s.failSteps {
		return fmt.Errorf("disk full")
	}
	s.mu.Lock()
	for _, st := range steps {
		s.calls = append(s.calls, fmt.Sprintf("steps %d", st.Checkpoint.Step))
		if st.Checkpoint.Step == 0 {
			s.cp0 = maps.Clone(st.Checkpoint.Changed)
		}
		if !st.Checkpoint.Encoded {
			s.unencoded++
		}
	}
	s.mu.Unlock()
	return store.CommitSteps(ctx, s.Store, steps)
}

func (s *orderStore) RecordInvocations(ctx context.Context, invs []*store.Invocation) error {
	s.mu.Lock()
	s.calls = append(s.calls, fmt.Sprintf("invocations %d", len(invs)))
	s.mu.Unlock()
	return store.RecordInvocations(ctx, s.Store, invs)
}

func (s *orderStore) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}
