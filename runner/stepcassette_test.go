package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/store"
)

// A run submitted with a cassette is answered from it by every StepRun
// that opens it, and by a local resume, without the file and without a
// request reaching the server; a request with no recording fails its node
// with the local replay's message, naming the file the client read.
func TestSubmitReplayAnswersFromTheRecordedCassette(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "page %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	g := compileYAML(t, `
lgx: 1
name: replayed
state:
  url: {type: string, required: true}
  body: {type: string}
nodes:
  fetch:
    type: http_fetch
    with: {url: "${{ state.url }}"}
    output: {body: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
  - {from: fetch, to: END}
`)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "c.yaml")
	rec, err := cassette.Open(file, cassette.Record, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"url": srv.URL + "/a"}
	local, err := Run(ctx, g, Options{Store: store.NewMemory(), Inputs: in, Environ: []string{}, HTTPClient: rec.Wrap(&http.Client{})})
	if err != nil || local.State["body"] != "page /a" {
		t.Fatalf("recording run: %v, %v", local, err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	before := hits.Load()
	rc := &ReplayCassette{Path: "flows/c.yaml", Data: data}

	st := store.NewMemory()
	if err := SubmitReplay(ctx, g, st, "R1", in, nil, rc); err != nil {
		t.Fatal(err)
	}
	if p := driveSteps(t, st, "R1", false); p.Status != store.StatusCompleted {
		t.Fatalf("replayed run: %s (%s)", p.Status, p.Error)
	}
	res, err := Outcome(ctx, st, "R1", nil)
	if err != nil || res.State["body"] != "page /a" {
		t.Fatalf("replayed run: %v, %v", res, err)
	}

	if err := SubmitReplay(ctx, g, st, "R2", map[string]any{"url": srv.URL + "/b"}, nil, rc); err != nil {
		t.Fatal(err)
	}
	const miss = "no recording in cassette flows/c.yaml; nearest is recording 0:"
	if p := driveSteps(t, st, "R2", false); p.Status != store.StatusFailed || !strings.Contains(p.Error, miss) || !strings.Contains(p.Error, "[cassette]") {
		t.Fatalf("unrecorded request: %s (%s)", p.Status, p.Error)
	}
	_, err = Resume(ctx, st, "R2", Options{Environ: []string{}})
	var ne *NodeError
	if !errors.As(err, &ne) || !errors.Is(err, cassette.ErrNoRecording) || !strings.Contains(err.Error(), miss) {
		t.Fatalf("local resume: %v", err)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the replays sent %d requests", n)
	}

	// The cassette is recorded next to the subgraph texts, under a key no
	// subgraph takes: the run's record gives it back whole.
	r, err := st.GetRun(ctx, "R1")
	if err != nil {
		t.Fatal(err)
	}
	if got := recordedCassette(r); got == nil || got.Path != rc.Path || string(got.Data) != string(data) {
		t.Errorf("recorded cassette = %+v", got)
	}
}
