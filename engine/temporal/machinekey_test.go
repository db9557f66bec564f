package temporal

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

const machineKeyedFetch = `
lgx: 1
name: machine_keyed
state:
  base: {type: string, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ ["a", "a", "a", "a", "b", "b", "b", "b"] }}
    pool: {name: hosts, key: "${{ item }}"}
    with: {url: "${{ state.base }}/${{ item }}/${{ index }}"}
    output: {pages: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
`

// A key on a machine-wide pool (the user config's) runs as locally: the
// key's caps are the run's, held by the workflow across workers, and the
// pool's total is taken by each attempt from the config's store. The
// fetches the workflow has in flight are one per host at a time (the
// worker's own process would hold a key for itself, workers on many
// machines would not), hosts in parallel; the state is a local run's and
// no slot is left held.
func TestSchedulerKeyedMachinePool(t *testing.T) {
	cfg, ds := spec.ParseUserConfig("config.yaml", []byte("pools: {hosts: {concurrency: 3, per_key: {concurrency: 1}}}\n"))
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	slots, err := store.OpenSQLite(filepath.Join(t.TempDir(), "slots.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer slots.Close()
	w, ds := spec.Load("machine_keyed.yaml", []byte(machineKeyedFetch))
	ds = append(ds, cfg.Apply(w)...)
	ds = append(ds, spec.Validate(w)...)
	if ds.HasErrors() {
		t.Fatal(ds.Errors())
	}
	g, err := runner.Compile(w)
	if err != nil {
		t.Fatal(err)
	}
	srv := &keyServer{cur: map[string]int{}, max: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	inputs := map[string]any{"base": hs.URL}
	lm := runner.NewMachinePools(cfg, slots)
	want, err := runner.Run(context.Background(), g, runner.Options{Store: store.NewMemory(), Inputs: inputs, Environ: []string{}, Machine: lm})
	lm.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	clear(srv.max)
	srv.top = 0
	srv.mu.Unlock()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "KM", inputs, nil); err != nil {
		t.Fatal(err)
	}
	var hf hostFlights
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		a.Machine = runner.NewMachinePools(cfg, slots)
		t.Cleanup(func() { a.Machine.Close() })
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			host := "aaaabbbb"[in.Index : in.Index+1]
			hf.begin(host)
			defer hf.end(host)
			// Long enough for the workflow to dispatch what its caps
			// allow before the first fetch ends.
			time.Sleep(50 * time.Millisecond)
			return a.Invoke(ctx, in)
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "KM"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var out RunOutput
	if err := env.GetWorkflowResult(&out); err != nil || out.Status != store.StatusCompleted {
		t.Fatalf("run: %+v %v", out, err)
	}
	got, err := runner.Outcome(context.Background(), st, "KM", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state:\n temporal %s\n local    %s", g, w)
	}
	hf.check(t, "across the workers")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.top > 2 {
		t.Errorf("%d requests in flight at most: want at most 2 (one per host)", srv.top)
	}
	if held, err := slots.Slots(context.Background(), "hosts"); err != nil || len(held) != 0 {
		t.Errorf("slots left after the run: %+v, %v", held, err)
	}
}
