package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/store"
)

// A run submitted to be recorded has every StepRun that opens it record
// its requests, redacted with the worker's secrets, to the event log,
// where Tail never shows them; RecordedRequests gives them back by path,
// whatever order the workers sent them in, and the file written from
// them replays the run locally without a request.
func TestSubmitRecordingRecordsTheWorkersRequests(t *testing.T) {
	const secret = "rec-secret-0123456789"
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "page %s %s", r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(srv.Close)
	g := compileYAML(t, `
lgx: 1
name: recorded
secrets: [REC_KEY]
state:
  url: {type: string, required: true}
  a: {type: string}
  b: {type: string}
nodes:
  a:
    type: http_fetch
    with: {url: "${{ state.url }}/a?key=${{ secrets.REC_KEY }}"}
    output: {a: "${{ result.body }}"}
  b:
    type: http_fetch
    with: {url: "${{ state.url }}/b"}
    output: {b: "${{ result.body }}"}
edges:
  - {from: START, to: a}
  - {from: START, to: b}
  - {from: a, to: END}
  - {from: b, to: END}
`)
	ctx := context.Background()
	st := store.NewMemory()
	in := map[string]any{"url": srv.URL}
	if err := SubmitCassette(ctx, g, st, "R", in, nil, EngineCassette{Record: true}); err != nil {
		t.Fatal(err)
	}
	environ := []string{"REC_KEY=" + secret}
	open := func() *StepRun {
		s, err := OpenStep(ctx, st, "R", StepOptions{Environ: environ})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	}
	p, err := open().Plan(ctx)
	if err != nil || len(p.Nodes) != 2 {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	// b first, on its own worker, as a remote pool may run them.
	for _, n := range []string{"b", "a"} {
		s := open()
		if _, err := s.InvokeOne(ctx, n, -1); err != nil {
			t.Fatalf("invoke %s: %v", n, err)
		}
		if err := s.FlushEvents(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := open().CommitStep(ctx, p.Step); err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("commit: %+v, %v", res, err)
	}
	out, err := Outcome(ctx, st, "R", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The node read the cleaned response, as a local recording's does.
	if out.State["a"] != "page /a key=***" || out.State["b"] != "page /b " {
		t.Fatalf("recorded run's state: %v", out.State)
	}

	docs, err := RecordedRequests(ctx, st, "R")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || !strings.Contains(string(docs[0]), "/a?key=") || !strings.Contains(string(docs[1]), "/b") {
		t.Fatalf("recorded requests, want a then b:\n%s", docs)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := cassette.WriteFile(file, docs); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{secret, url.QueryEscape(secret)} {
		if strings.Contains(string(data), enc) {
			t.Fatalf("the cassette holds the secret:\n%s", data)
		}
	}

	// The view never sees them.
	var seen eventLog
	tail, err := NewTail(st, "R", "recorded", &seen)
	if err != nil {
		t.Fatal(err)
	}
	if err := tail.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(seen.named("node_end")) != 2 || len(seen.named(eventHTTPInteraction)) != 0 {
		t.Errorf("tail relayed %+v", seen.events)
	}

	// The file replays the run locally, with another key, sending nothing.
	before := hits.Load()
	rc, err := cassette.Open(file, cassette.Replay, []string{"another-key"})
	if err != nil {
		t.Fatal(err)
	}
	local, err := Run(ctx, g, Options{Store: store.NewMemory(), Inputs: in, Environ: []string{"REC_KEY=another-key"}, HTTPClient: rc.Wrap(&http.Client{})})
	if err != nil || fmt.Sprint(local.State) != fmt.Sprint(out.State) {
		t.Fatalf("replay: %v, %v; recorded %v", local, err, out.State)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the replay sent %d requests", n)
	}
}

// Of the recordings of one request at one place in one invocation (an
// invocation sent again by another worker) the last logged is kept;
// other requests are kept in the order logged; steps sort as numbers.
func TestRecordedRequestsKeepsTheLastOfARequestSentAgain(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	if err := st.CreateRun(ctx, &store.Run{ID: "R", Workflow: "w", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	line := func(step int, path string, seq int, u, resp string) []byte {
		doc := fmt.Sprintf("request:\n  method: GET\n  url: %s\nresponse:\n  body: %s\n", u, resp)
		b, err := json.Marshal(loggedInteraction{Event: eventHTTPInteraction, Step: step, Path: path, Seq: seq, YAML: doc})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	batches := [][][]byte{
		{line(10, "10/x", 0, "http://h/late", "late")},
		{line(2, "2/n", 0, "http://h/one", "dead worker"), []byte(`{"event":"node_end","node":"http_interaction"}`)},
		{line(2, "2/n", 0, "http://h/one", "retried"), line(2, "2/n", 0, "http://h/other", "other"), line(2, "2/n", 1, "http://h/two", "two")},
	}
	for _, b := range batches {
		if err := st.AppendEvents(ctx, "R", b); err != nil {
			t.Fatal(err)
		}
	}
	docs, err := RecordedRequests(ctx, st, "R")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		s := string(d)
		got = append(got, s[strings.LastIndex(s, "body: ")+6:len(s)-1])
	}
	if want := "[retried other two late]"; fmt.Sprint(got) != want {
		t.Errorf("kept %v, want %s", got, want)
	}
}

// A subgraph's child, run step by step, records its requests as its own
// invocations' (under the subgraph invocation's path, in the parent's
// step), each once though every call is repeated as a retried activity
// would repeat it.
func TestSubmitRecordingRecordsAChildsRequests(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "page %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	writeWorkflows(t, dir, srv.URL, map[string]string{
		"main.yaml": `
lgx: 1
name: parent
state:
  body: {type: string}
nodes:
  sub:
    type: subgraph
    with: {workflow: child.yaml}
    output: {body: "${{ result.body }}"}
edges:
  - {from: START, to: sub}
`,
		"child.yaml": `
lgx: 1
name: child
state:
  body: {type: string}
nodes:
  fetch:
    type: http_fetch
    with: {url: "URL/child"}
    output: {body: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
`})
	g, err := LoadGraph(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := store.NewMemory()
	if err := SubmitCassette(ctx, g, st, "R", nil, nil, EngineCassette{Record: true}); err != nil {
		t.Fatal(err)
	}
	if p := driveSteps(t, st, "R", true); p.Status != store.StatusCompleted {
		t.Fatalf("run: %s (%s)", p.Status, p.Error)
	}
	// driveSteps closes its StepRuns when the test ends: their batches
	// are written within logFlushEvery.
	var docs [][]byte
	for deadline := time.Now().Add(5 * time.Second); len(docs) == 0 && time.Now().Before(deadline); time.Sleep(logFlushEvery / 2) {
		if docs, err = RecordedRequests(ctx, st, "R"); err != nil {
			t.Fatal(err)
		}
	}
	if len(docs) != 1 || !strings.Contains(string(docs[0]), "/child") || hits.Load() != 1 {
		t.Fatalf("recorded %d requests of %d sent:\n%s", len(docs), hits.Load(), docs)
	}
	log, _ := store.Store(st).(store.EventLog)
	bs, err := log.Events(ctx, "R", 0)
	if err != nil {
		t.Fatal(err)
	}
	var li loggedInteraction
	for _, b := range bs {
		for _, raw := range b.Events {
			if strings.Contains(string(raw), eventHTTPInteraction) {
				if err := json.Unmarshal(raw, &li); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if li.Step != 1 || !strings.HasPrefix(li.Path, "1/sub/") || !strings.HasSuffix(li.Path, "fetch") {
		t.Errorf("recorded as step %d path %q, want step 1 under 1/sub/", li.Step, li.Path)
	}
}
