package runner

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// machineFixture is a user config and the SQLite store its pools live in.
func machineFixture(t *testing.T, cfgSrc string) (*spec.UserConfig, *store.SQLite) {
	t.Helper()
	cfg, ds := spec.ParseUserConfig("config.yaml", []byte(cfgSrc))
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "slots.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return cfg, st
}

// compileWithConfig compiles src with the config's pools applied, as the
// CLI does.
func compileWithConfig(t *testing.T, cfg *spec.UserConfig, src string) *Graph {
	t.Helper()
	w, ds := spec.Load("test.yaml", []byte(src))
	ds = append(ds, cfg.Apply(w)...)
	ds = append(ds, spec.Validate(w)...)
	if ds.HasErrors() {
		t.Fatal(ds.Errors())
	}
	g, err := Compile(w)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Two processes (two MachinePools, two owners) running at once share a
// config pool of concurrency 2: never more than 2 invocations in flight
// over both runs.
func TestMachinePoolConcurrencyAcrossOwners(t *testing.T) {
	for _, pool := range []string{
		"llm",
		// Taken with a key, the machine-wide cap bounds the total.
		`{name: llm, key: "${{ item % 3 }}"}`,
	} {
		t.Run(pool, func(t *testing.T) { testMachinePoolConcurrency(t, pool) })
	}
}

func testMachinePoolConcurrency(t *testing.T, pool string) {
	cfg, st := machineFixture(t, "pools: {llm: {concurrency: 2}}\n")
	g := compileWithConfig(t, cfg, `lgx: 1
name: t
nodes:
  f: {type: probe, for_each: "${{ 1..8 }}", pool: `+pool+`, with: {sleep_ms: 15, group: mp_conc}}
edges:
  - {from: START, to: f}
`)
	grp := resetGroup("mp_conc")
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		m := NewMachinePools(cfg, st)
		defer m.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Run(context.Background(), g, Options{Machine: m})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if grp.calls != 16 || grp.max != 2 {
		t.Errorf("calls %d, max in flight %d; want 16 calls, at most (and reaching) 2", grp.calls, grp.max)
	}
	if slots, err := st.Slots(context.Background(), "llm"); err != nil || len(slots) != 0 {
		t.Errorf("slots left after the runs: %+v, %v", slots, err)
	}
}

// A config pool's rate holds across processes: with 20/s and a burst of 1,
// 10 calls over two runs take at least 9/20 s and no three starts are
// within 100ms. It runs on the fake clock of a synctest bubble, so a start
// cannot lag its token on a loaded machine and the bounds are exact.
func TestMachinePoolRateAcrossOwners(t *testing.T) {
	synctest.Test(t, testMachinePoolRateAcrossOwners)
}

func testMachinePoolRateAcrossOwners(t *testing.T) {
	cfg, st := machineFixture(t, "pools: {api: {rate: 20/s, burst: 1}}\n")
	g := compileWithConfig(t, cfg, `lgx: 1
name: t
nodes:
  f: {type: probe, for_each: "${{ 1..5 }}", pool: api, with: {group: mp_rate}}
edges:
  - {from: START, to: f}
`)
	grp := resetGroup("mp_rate")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		m := NewMachinePools(cfg, st)
		defer m.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Run(context.Background(), g, Options{Machine: m}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	starts := append([]time.Time(nil), grp.starts...)
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	if len(starts) != 10 {
		t.Fatalf("%d calls, want 10", len(starts))
	}
	if d := starts[9].Sub(starts[0]); d < 450*time.Millisecond {
		t.Errorf("10 calls at 20/s took %v, want >= 450ms", d)
	}
	for i := 2; i < len(starts); i++ {
		// Tokens are 50ms apart, so three starts span at least 100ms.
		if d := starts[i].Sub(starts[i-2]); d < 100*time.Millisecond {
			t.Errorf("starts %d to %d span %v: more than the rate allows", i-2, i, d)
		}
	}
}

// A slot held by a working process is renewed: it outlives its TTL, and
// another owner cannot take it; Close gives it back. The TTLs pass on the
// fake clock of a synctest bubble.
func TestMachinePoolRenewAndClose(t *testing.T) {
	synctest.Test(t, testMachinePoolRenewAndClose)
}

func testMachinePoolRenewAndClose(t *testing.T) {
	cfg, st := machineFixture(t, "pools: {llm: {concurrency: 1}}\n")
	m := newMachinePools(cfg, st, 300*time.Millisecond)
	s := &machineSlots{mp: m.pool(cfg.Pools[0]), runID: "r1"}
	if err := s.acquire(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // more than 2 TTLs
	slots, err := st.Slots(context.Background(), "llm")
	if err != nil || len(slots) != 1 || slots[0].RunID != "r1" || !slots[0].Lease.Expires.After(time.Now()) {
		t.Fatalf("held slot after 2 TTLs: %+v, %v; want renewed", slots, err)
	}
	other := newMachinePools(cfg, st, time.Second)
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	waited := false
	err = (&machineSlots{mp: other.pool(cfg.Pools[0])}).acquire(ctx, func() { waited = true })
	if !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("another owner took a renewed slot: %v (waited %v)", err, waited)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if slots, _ := st.Slots(context.Background(), "llm"); len(slots) != 0 {
		t.Errorf("slots after Close: %+v", slots)
	}
}

// A waiter in this process is woken by a release here, without waiting
// for its poll: on the fake clock of a synctest bubble it gets the slot at
// the instant of the release.
func TestMachinePoolLocalWake(t *testing.T) {
	synctest.Test(t, testMachinePoolLocalWake)
}

func testMachinePoolLocalWake(t *testing.T) {
	cfg, st := machineFixture(t, "pools: {llm: {concurrency: 1}}\n")
	m := NewMachinePools(cfg, st)
	defer m.Close()
	a, b := &machineSlots{mp: m.pool(cfg.Pools[0])}, &machineSlots{mp: m.pool(cfg.Pools[0])}
	if err := a.acquire(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(context.Background(), nil) }()
	time.Sleep(20 * time.Millisecond)
	released := time.Now()
	a.release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(released); d != 0 {
			t.Errorf("the waiter got the released slot %s after the release, want at once", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter never got the released slot")
	}
	b.release()
}

// A workflow naming a config pool does not run without MachinePools:
// running it with a local pool instead would silently drop the cap.
func TestMachinePoolRequired(t *testing.T) {
	cfg, _ := machineFixture(t, "pools: {llm: {concurrency: 1}}\n")
	g := compileWithConfig(t, cfg, `lgx: 1
name: t
nodes:
  f: {type: probe, pool: llm, with: {}}
edges:
  - {from: START, to: f}
`)
	_, err := Run(context.Background(), g, Options{})
	if !errors.Is(err, errNoMachinePools) || !strings.Contains(err.Error(), "pool llm of config.yaml") {
		t.Errorf("Run without MachinePools = %v", err)
	}
}

// Resume applies the config to the recorded workflow, so a run that
// names a config pool resumes.
func TestMachinePoolResume(t *testing.T) {
	cfg, st := machineFixture(t, "pools: {llm: {concurrency: 1}}\n")
	g := compileWithConfig(t, cfg, `lgx: 1
name: t
nodes:
  ask: {type: interrupt, with: {message: "go?"}}
  f: {type: probe, pool: llm, with: {group: mp_resume}}
edges:
  - {from: START, to: ask}
  - {from: ask, to: f}
`)
	m := NewMachinePools(cfg, st)
	defer m.Close()
	res, err := Run(context.Background(), g, Options{Store: st, Machine: m})
	if err != nil || res.Status != store.StatusInterrupted {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	grp := resetGroup("mp_resume")
	res, err = Resume(context.Background(), st, res.RunID, Options{Machine: m, Answer: Answer{Empty: true}})
	if err != nil || res.Status != store.StatusCompleted || grp.calls != 1 {
		t.Fatalf("Resume = %+v, %v (calls %d)", res, err, grp.calls)
	}
}
