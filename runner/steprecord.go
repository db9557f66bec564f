package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/store"
)

// A run recorded on an engine (`lgx run --record --engine temporal`)
// sends its requests from the workers. The run carries a marker in its
// sources (recordKey), so that every worker that opens one of its steps
// records: each interaction is cleaned and redacted on the worker as a
// local recording cleans it (cassette.Stream), then appended to the
// run's event log as an eventHTTPInteraction line, which Tail never
// relays. When the run ends or pauses, the client reads them back
// (RecordedRequests) and writes the file.

// EngineCassette is what a run on an engine does with its HTTP requests:
// answers them from Replay (nil: sends them), and, with Record, records
// them for the client to write.
type EngineCassette struct {
	Replay *ReplayCassette
	Record bool
}

// recordKey marks a recorded run in its sources: it ends in "/", which
// no subgraph's cleaned path does.
const recordKey = "lgx:record-cassette/"

// eventHTTPInteraction is the event log's line of one recorded
// interaction (not an Event: no client shows it).
const eventHTTPInteraction = "http_interaction"

var interactionMark = []byte(`"event":"` + eventHTTPInteraction + `"`)

// loggedInteraction is a recorded interaction as the log keeps it: the
// top-level step and path of the invocation that sent it, its place
// among that invocation's requests in the worker that sent them, and the
// cleaned interaction as a cassette's YAML.
type loggedInteraction struct {
	Event string `json:"event"`
	Step  int    `json:"step"`
	Path  string `json:"path"`
	Seq   int    `json:"seq"`
	YAML  string `json:"interaction"`
}

// withCassettes returns the sources to record with a run: the subgraph
// texts, plus the replayed cassette and the record marker c asks for.
func withCassettes(sources map[string][]byte, c EngineCassette) map[string][]byte {
	out := withCassette(sources, c.Replay)
	if !c.Record {
		return out
	}
	m := make(map[string][]byte, len(out)+1)
	for k, v := range out {
		m[k] = v
	}
	// Not empty: a store may keep an empty source as NULL.
	m[recordKey] = []byte("record")
	return m
}

func recordsRequests(rec *store.Run) bool {
	_, ok := rec.Subgraphs[recordKey]
	return ok
}

// httpRecorder records the requests of a StepRun's invocations to its
// event log.
type httpRecorder struct {
	stream *cassette.Stream
	log    *logSink
	mu     sync.Mutex
	seq    map[string]int // the next sequence number of each path
}

func newHTTPRecorder(rec *store.Run, g *Graph, environ []string, log *logSink) (*httpRecorder, error) {
	if log == nil {
		return nil, &InputError{Msg: fmt.Sprintf("run %s records its requests, and the store keeps no event log to record them in", rec.ID)}
	}
	if environ == nil {
		environ = os.Environ()
	}
	// The secrets are this worker's: the values its requests carry.
	return &httpRecorder{stream: cassette.NewStream(cassette.Secrets(g.wf, environ)), log: log, seq: map[string]int{}}, nil
}

// client is base with the requests it sends recorded as the invocation at
// path (in top-level step step) sends them.
func (h *httpRecorder) client(base *http.Client, step int, path string) *http.Client {
	return h.stream.Wrap(base, func(doc []byte) {
		h.mu.Lock()
		n := h.seq[path]
		h.seq[path]++
		h.mu.Unlock()
		data, err := json.Marshal(loggedInteraction{Event: eventHTTPInteraction, Step: step, Path: path, Seq: n, YAML: string(doc)})
		if err != nil {
			return // a string and ints: never
		}
		h.log.emitRaw(data)
	})
}

// RecordedRequests returns the interactions the workers recorded for run
// runID, as cassette.WriteFile takes them: by top-level step, then
// invocation path, then order within the invocation, so that a replay
// answers each invocation's requests in the order it sent them.
//
// An invocation sent again (an activity retried after its worker died, a
// tools invocation run again after its calls) records its requests again:
// of the recordings of one request at one place in one invocation, only
// the last logged is kept, which is the one the run went on with.
func RecordedRequests(ctx context.Context, st store.Store, runID string) ([][]byte, error) {
	log, ok := st.(store.EventLog)
	if !ok {
		return nil, ErrNoEventLog
	}
	type key struct {
		step              int
		path              string
		seq               int
		method, url, body string
	}
	type entry struct {
		li  loggedInteraction
		pos int
	}
	last := map[key]entry{}
	pos := 0
	for seq := int64(0); ; {
		bs, err := log.Events(ctx, runID, seq)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		for _, b := range bs {
			for _, raw := range b.Events {
				if !bytes.Contains(raw, interactionMark) {
					continue
				}
				var li loggedInteraction
				if err := json.Unmarshal(raw, &li); err != nil || li.Event != eventHTTPInteraction {
					continue // an event that quotes the mark
				}
				m, u, body, err := cassette.ParseRequest([]byte(li.YAML))
				if err != nil {
					return nil, fmt.Errorf("run %s: %w", runID, err)
				}
				pos++
				last[key{li.Step, li.Path, li.Seq, m, u, body}] = entry{li, pos}
			}
			seq = b.Seq
		}
		if len(bs) < store.EventBatchLimit {
			break
		}
	}
	kept := make([]entry, 0, len(last))
	for _, e := range last {
		kept = append(kept, e)
	}
	sort.Slice(kept, func(i, j int) bool {
		a, b := kept[i].li, kept[j].li
		switch {
		case a.Step != b.Step:
			return a.Step < b.Step
		case a.Path != b.Path:
			return a.Path < b.Path
		case a.Seq != b.Seq:
			return a.Seq < b.Seq
		}
		return kept[i].pos < kept[j].pos
	})
	out := make([][]byte, len(kept))
	for i, e := range kept {
		out[i] = []byte(e.li.YAML)
	}
	return out, nil
}

// RecordableOnEngine returns why the requests of a run of g on an
// engine's workers could not all be recorded, or nil. Those to an MCP
// server over HTTP go through the worker's MCP sessions, which outlive
// the step (and the invocation) that opens them: their handshake is sent
// once per worker, not per invocation, so the file could miss or repeat
// it and not replay; such a run is refused rather than half recorded.
func RecordableOnEngine(g *Graph) error {
	subs, err := loadSubgraphs(g, os.ReadFile)
	if err != nil {
		return err
	}
	check := func(g *Graph) error {
		for _, s := range g.wf.MCP {
			if s.URL != "" {
				return fmt.Errorf("--record is not supported with --engine temporal for workflow %s: the requests to MCP server %s (over HTTP) go through the workers' sessions, which outlive a step (record it locally)", g.wf.Name, s.Name)
			}
		}
		return nil
	}
	if err := check(g); err != nil {
		return err
	}
	for _, key := range slices.Sorted(maps.Keys(subs.graphs)) {
		if err := check(subs.graphs[key]); err != nil {
			return err
		}
	}
	return nil
}
