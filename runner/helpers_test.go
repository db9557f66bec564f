package runner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// probe is a test-only node type: it sleeps, fails, panics or returns a
// value as its `with` says, and records how many invocations of its
// `group` are in flight.
type probe struct{}

func init() { nodes.Register(probe{}) }

func (probe) Name() string { return "probe" }

func (probe) Doc() nodes.Doc {
	return nodes.Doc{Summary: "test probe", With: []nodes.Field{
		{Name: "value", Type: "any"},
		{Name: "sleep_ms", Type: "integer"},
		{Name: "rand_ms", Type: "integer"},
		{Name: "fail", Type: "string"},
		{Name: "fail_times", Type: "integer"},
		{Name: "status", Type: "integer"},
		{Name: "retry_after_ms", Type: "integer"},
		{Name: "panic", Type: "boolean"},
		{Name: "group", Type: "string"},
		{Name: "block", Type: "boolean"},
		{Name: "msg", Type: "string"},
	}}
}

// groups tracks in-flight invocations per probe group.
type group struct {
	mu       sync.Mutex
	inflight int
	max      int
	calls    int
	starts   []time.Time
}

var (
	groupsMu sync.Mutex
	groups   = map[string]*group{}
	// attemptsByKey counts attempts per (group, node, index) for fail_times.
	attemptsByKey sync.Map
)

func getGroup(name string) *group {
	groupsMu.Lock()
	defer groupsMu.Unlock()
	g, ok := groups[name]
	if !ok {
		g = &group{}
		groups[name] = g
	}
	return g
}

func resetGroup(name string) *group {
	groupsMu.Lock()
	defer groupsMu.Unlock()
	g := &group{}
	groups[name] = g
	return g
}

func intArg(w map[string]any, k string) int {
	switch v := w[k].(type) {
	case int:
		return v
	case float64:
		return int(v)
	}
	return 0
}

func (probe) Run(ctx context.Context, inv *nodes.Invocation) (any, error) {
	w := inv.With
	gname, _ := w["group"].(string)
	g := getGroup(gname)
	g.mu.Lock()
	g.inflight++
	g.calls++
	g.max = max(g.max, g.inflight)
	g.starts = append(g.starts, time.Now())
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inflight--
		g.mu.Unlock()
	}()
	if p, _ := w["panic"].(bool); p {
		panic("probe panicked")
	}
	if w["msg"] == nil {
		w["msg"] = ""
	}
	d := time.Duration(intArg(w, "sleep_ms")) * time.Millisecond
	if rm := intArg(w, "rand_ms"); rm > 0 {
		d += time.Duration(rand.IntN(rm*1000)) * time.Microsecond
	}
	if b, _ := w["block"].(bool); b {
		d = time.Hour
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if kind, _ := w["fail"].(string); kind != "" {
		key := fmt.Sprintf("%s/%s/%s/%d", inv.RunID, gname, inv.Node, inv.Index)
		v, _ := attemptsByKey.LoadOrStore(key, new(atomic.Int64))
		n := v.(*atomic.Int64).Add(1)
		if ft := intArg(w, "fail_times"); ft == 0 || int(n) <= ft {
			return nil, &nodes.Error{Kind: nodes.Kind(kind), Status: intArg(w, "status"),
				RetryAfter: time.Duration(intArg(w, "retry_after_ms")) * time.Millisecond,
				Err:        fmt.Errorf("probe failure %d%s", n, w["msg"])}
		}
	}
	return w["value"], nil
}

// compileYAML loads, validates and compiles a workflow from text.
func compileYAML(t testing.TB, src string) *Graph {
	t.Helper()
	src = strings.ReplaceAll(src, "\t", "  ")
	w, ds := spec.Load("test.yaml", []byte(src))
	if ds.HasErrors() {
		t.Fatalf("load: %v", ds.Errors())
	}
	if ds := spec.Validate(w); ds.HasErrors() {
		t.Fatalf("validate: %v", ds.Errors())
	}
	g, err := Compile(w)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return g
}

// eventLog is a Sink that keeps every event.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (r *eventLog) Emit(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *eventLog) named(name string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}
