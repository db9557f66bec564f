package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// records is a run whose invocations are recorded every way the journal
// records them: pure steps of one invocation (kept with their checkpoint;
// on SQLite a lone record in the checkpoint's row, built in a record the
// journal reuses), a step of one invocation that continued after an error,
// a for_each, a parallel step that waits at an interrupt and, resumed, a
// step of one invocation again.
const records = `
lgx: 1
name: records
secrets: [TOKEN]
state:
  draft: {type: string}
  log: {type: list, reducer: append, default: []}
  approved: {type: boolean, default: false}
  msg: {type: string}
nodes:
  write: {type: set, output: {draft: "draft with ${{ secrets.TOKEN }}", log: write}}
  flaky:
    type: probe
    with: {fail: status, status: 404}
    on_error: continue
    output: {msg: "${{ error.kind }}"}
  each: {type: set, for_each: [1, 2], output: {log: "item ${{ item }}"}}
  side: {type: probe, with: {group: lone_side, value: side}, output: {log: "${{ result }}"}}
  ask: {type: interrupt, with: {message: "approve ${{ state.draft }}?"}, output: {approved: "${{ result.ok }}"}}
  publish: {type: set, output: {log: published}}
edges:
  - {from: START, to: write}
  - {from: write, to: flaky}
  - {from: flaky, to: each}
  - {from: each, to: [ask, side]}
  - from: ask
    when:
      - {if: state.approved, to: publish}
`

// The SQLite store, which keeps the record of an invocation alone in its
// step with the step's checkpoint, gives back the records the memory
// store gives, which keeps every record apart: what `lgx runs show`,
// resume and the Temporal client's view read.
func TestStoresGiveTheSameRecords(t *testing.T) {
	ctx := context.Background()
	g := compileYAML(t, records)
	env := []string{"TOKEN=s3cr3t"}
	sq, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	read := map[string][]string{}
	for name, st := range map[string]store.Store{"memory": store.NewMemory(), "sqlite": sq} {
		resetGroup("lone_side")
		res, err := Run(ctx, g, Options{Store: st, Environ: env})
		if err != nil || res.Status != store.StatusInterrupted {
			t.Fatalf("%s: run = %v, %v", name, res, err)
		}
		res2, err := Resume(ctx, st, res.RunID, Options{Environ: env, Answer: Answer{Values: map[string]any{"ok": true}}})
		if err != nil || res2.Status != store.StatusCompleted {
			t.Fatalf("%s: resume = %v, %v", name, res2, err)
		}
		invs, err := st.Invocations(ctx, res.RunID)
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range invs {
			if inv.RunID != res.RunID || inv.StartedAt.IsZero() || inv.EndedAt.Before(inv.StartedAt) {
				t.Errorf("%s: %s: run %s, times %v .. %v", name, inv.Path, inv.RunID, inv.StartedAt, inv.EndedAt)
			}
			if strings.Contains(string(inv.Writes), "s3cr3t") {
				t.Errorf("%s: %s: secret recorded: %s", name, inv.Path, inv.Writes)
			}
			read[name] = append(read[name], fmt.Sprintf("%s step %d node %s index %d: %s %s %q %q attempts %d",
				inv.Path, inv.Step, inv.Node, inv.Index, inv.Status, inv.Writes, inv.Error, inv.ErrorKind, inv.Attempts))
		}
	}
	if !reflect.DeepEqual(read["sqlite"], read["memory"]) {
		t.Errorf("SQLite records:\n%s\nmemory records:\n%s", strings.Join(read["sqlite"], "\n"), strings.Join(read["memory"], "\n"))
	}
	for _, want := range []string{`1/write step 1 node write index -1: ok {"draft":"draft with ***","log":"write"}`,
		`2/flaky step 2 node flaky index -1: continued {"msg":"status"}`, `3/each[1] step 3 node each index 1: ok`, `5/publish step 5`} {
		found := false
		for _, r := range read["sqlite"] {
			found = found || strings.HasPrefix(r, want)
		}
		if !found {
			t.Errorf("no record %q in\n%s", want, strings.Join(read["sqlite"], "\n"))
		}
	}
}
