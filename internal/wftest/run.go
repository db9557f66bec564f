package wftest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/internal/exitcode"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Options configure Run.
type Options struct {
	// Filter selects cases by "FILE_BASE/CASE NAME" or case name; nil
	// runs all.
	Filter *regexp.Regexp
	// Parallel caps the cases running at once (<= 0: 4).
	Parallel int
	// Record re-records the cassettes of cases that have one, against the
	// real servers (--update).
	Record bool
	// Version goes into the User-Agent of requests.
	Version string
}

// Failure is one expectation that did not hold.
type Failure struct {
	Pos Pos
	Msg string
	// Error marks a problem that kept the case from running as written
	// (its cassette cannot be read or written), not an expectation that
	// did not hold: JUnit reports it as an error.
	Error bool
}

// Result is the outcome of one case.
type Result struct {
	File     *File
	Case     *Case
	Failures []Failure
	Start    time.Time
	Duration time.Duration
	// State is the final state, Exit the exit code the run would have
	// had (for --update).
	State map[string]any
	Exit  int
}

// Passed reports whether every expectation held.
func (r *Result) Passed() bool { return len(r.Failures) == 0 }

// Load parses each test file and checks it against its workflow; the
// workflows are compiled once per file. The problems of every file are
// reported together, as Errors.
func Load(paths []string) ([]*File, []*runner.Graph, error) {
	var files []*File
	var graphs []*runner.Graph
	var errs Errors
	for _, p := range paths {
		f, g, err := load(p)
		if err != nil {
			errs.add(p, err)
			continue
		}
		files = append(files, f)
		graphs = append(graphs, g)
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return files, graphs, nil
}

// load parses one test file and checks it against its workflow; its
// problems are Errors, those of the file's parts and of its workflow
// together.
func load(p string) (*File, *runner.Graph, error) {
	f, err := Parse(p)
	var errs Errors
	if err != nil {
		if f == nil || f.Workflow == "" {
			return nil, nil, err
		}
		errs.add(p, err)
	}
	fail := func(err error) (*File, *runner.Graph, error) {
		errs.add(p, err)
		sortErrors(errs)
		return nil, nil, errs
	}
	wf, ds, err := spec.LoadFile(f.Workflow)
	if err != nil {
		return fail(&Error{Pos: f.WfPos, Msg: fmt.Sprintf("workflow: %v", err)})
	}
	if !ds.HasErrors() {
		ds = append(ds, spec.Validate(wf)...)
	}
	if ds.HasErrors() {
		return fail(&Error{Pos: f.WfPos, Msg: fmt.Sprintf("workflow %s is invalid:\n%s", f.Workflow, strings.TrimRight(ds.Errors().String(), "\n"))})
	}
	if err := runner.CheckSubgraphs(wf); err != nil {
		// A child that cannot run makes every case fail the same way:
		// the file is invalid, as lgx validate says.
		return fail(&Error{Pos: f.WfPos, Msg: fmt.Sprintf("workflow %s: %v", f.Workflow, err)})
	}
	if err := f.Check(wf); err != nil || len(errs) > 0 {
		return fail(err)
	}
	g, err := runner.Compile(wf)
	if err != nil {
		return fail(&Error{Pos: f.WfPos, Msg: fmt.Sprintf("workflow %s: %v", f.Workflow, err)})
	}
	return f, g, nil
}

// Run runs the selected cases of files (graphs[i] compiled from
// files[i].Workflow), at most opts.Parallel at once, and returns their
// results in file and case order.
func Run(ctx context.Context, files []*File, graphs []*runner.Graph, opts Options) []*Result {
	var results []*Result
	type job struct {
		r *Result
		g *runner.Graph
	}
	var jobs []job
	for i, f := range files {
		for _, c := range f.Cases {
			if opts.Filter != nil && !opts.Filter.MatchString(c.Name) && !opts.Filter.MatchString(f.Path+"/"+c.Name) {
				continue
			}
			r := &Result{File: f, Case: c}
			results = append(results, r)
			jobs = append(jobs, job{r, graphs[i]})
		}
	}
	par := opts.Parallel
	if par <= 0 {
		par = 4
	}
	var g errgroup.Group
	g.SetLimit(par)
	for _, j := range jobs {
		g.Go(func() error {
			j.r.Start = time.Now()
			runCase(ctx, j.g, j.r, opts)
			j.r.Duration = time.Since(j.r.Start)
			return nil
		})
	}
	_ = g.Wait()
	return results
}

// observer folds a case's events into what the expectations read: the
// nodes of each step in order, and what max_in_flight checks.
//
// An invocation is in flight while it holds its caps: from its acquired
// event (its first attempt got every slot) to its end, so the time it
// waits for a slot does not count. An invocation of a type that holds no
// slot (a subgraph, a tools node) emits no acquired; it is in flight from
// its node_start. Others that end without acquired never ran their type
// (a stub answered, a resume supplied the value, or `with` failed) and are
// not counted. Spans are measured in event order, which is causal: an
// invocation's end is emitted before its slot is released, so the one
// that gets the slot next is acquired after it.
type observer struct {
	mu       sync.Mutex
	path     []string
	slotless map[string]bool // nodes whose type holds no slot
	seq      int
	open     map[string]*span   // by invocation path
	spans    map[string][]*span // by node, finished or not
	stubbed  map[string]bool    // invocation paths a stub answered
}

// span is one invocation between events begin and end (numbers in the
// order the observer saw them; end 0 while it runs). begin is its
// node_start until it is acquired.
type span struct {
	path       string
	begin, end int
	acquired   bool
}

// newObserver returns an observer for a run of g.
func newObserver(g *runner.Graph) *observer {
	var slotless []string
	for _, n := range g.Workflow().Nodes {
		if t, ok := nodes.Lookup(n.Type); ok && nodes.CapabilitiesOf(t).HoldsNoSlot {
			slotless = append(slotless, n.Name)
		}
	}
	return observing(slotless...)
}

// observing returns an observer for a run whose nodes named slotless hold
// no slot.
func observing(slotless ...string) *observer {
	o := &observer{slotless: map[string]bool{}, open: map[string]*span{}, spans: map[string][]*span{}, stubbed: map[string]bool{}}
	for _, n := range slotless {
		o.slotless[n] = true
	}
	return o
}

func (o *observer) Emit(e runner.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	switch e.Event {
	case runner.EventStepStart:
		o.path = append(o.path, e.Nodes...)
	case runner.EventNodeStart:
		s := &span{path: e.Path, begin: o.seq}
		o.open[e.Path] = s
		o.spans[e.Node] = append(o.spans[e.Node], s)
	case runner.EventAcquired:
		if s := o.open[e.Path]; s != nil {
			s.begin, s.acquired = o.seq, true
		}
	case runner.EventNodeEnd, runner.EventNodeError, runner.EventInterrupt:
		if s := o.open[e.Path]; s != nil {
			s.end = o.seq
			delete(o.open, e.Path)
		}
	}
}

// stub records that a stub answered the invocation at path.
func (o *observer) stub(path string) {
	o.mu.Lock()
	o.stubbed[path] = true
	o.mu.Unlock()
}

// maxInFlight returns the most invocations of node in flight at once.
func (o *observer) maxInFlight(node string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	// +1 at a span's begin, -1 after its end; sequence numbers are
	// distinct, so no two changes tie.
	delta := map[int]int{}
	for _, s := range o.spans[node] {
		if !s.acquired && (!o.slotless[node] || o.stubbed[s.path]) {
			continue
		}
		end := s.end
		if end == 0 {
			end = o.seq + 1 // still running when the case ended
		}
		delta[s.begin]++
		delta[end]--
	}
	at := make([]int, 0, len(delta))
	for k := range delta {
		at = append(at, k)
	}
	slices.Sort(at)
	most, cur := 0, 0
	for _, k := range at {
		cur += delta[k]
		most = max(most, cur)
	}
	return most
}

// refusing answers every request with a failure of kind cassette: a case
// without a cassette runs offline, so a node that would reach the network
// must be stubbed.
type refusing struct{ name string }

func (t refusing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return nil, &nodes.Error{Kind: nodes.KindCassette, Err: fmt.Errorf(
		"case %q has no cassette: %s %s was not sent (stub the node or give the case a cassette)", t.name, req.Method, req.URL.Redacted())}
}

func runCase(ctx context.Context, g *runner.Graph, r *Result, opts Options) {
	c := r.Case
	broken := func(pos Pos, err error) {
		r.Failures = append(r.Failures, Failure{Pos: pos, Msg: err.Error(), Error: true})
	}
	fail := func(pos Pos, format string, args ...any) {
		r.Failures = append(r.Failures, Failure{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	environ := os.Environ()
	for k, v := range c.Env {
		environ = append(environ, k+"="+v) // later entries win
	}
	client := &http.Client{Transport: refusing{c.Name}}
	if c.Cassette != "" {
		mode := cassette.Replay
		if opts.Record {
			mode = cassette.Record
		}
		if _, err := os.Stat(c.Cassette); mode == cassette.Replay && errors.Is(err, fs.ErrNotExist) {
			// cassette.Open's hint names lgx run; here it is recorded by
			// lgx test --update.
			broken(c.Pos, fmt.Errorf("cassette %s: file not found (record it with lgx test --update)", c.Cassette))
			return
		}
		cas, err := cassette.Open(c.Cassette, mode, cassette.Secrets(g.Workflow(), environ))
		if err != nil {
			broken(c.Pos, err)
			return
		}
		defer func() {
			if err := cas.Close(); err != nil {
				broken(c.Pos, err)
			}
		}()
		client = cas.Wrap(nodes.NewHTTPClient(opts.Version))
	}
	obs := newObserver(g)
	st := store.NewMemory()
	defer st.Close()
	ro := runner.Options{Inputs: c.Inputs, Store: st, Sink: obs, HTTPClient: client, Stubs: observed(stubsFor(c), obs), Environ: environ}
	res, err := runner.Run(ctx, g, ro)
	for _, step := range c.Resume {
		if res == nil || res.Status != store.StatusInterrupted {
			status := "not started"
			if res != nil {
				status = string(res.Status)
			}
			fail(step.Pos, "resume %s: the run is not paused at an interrupt (it is %s: %v)", step.Node, status, err)
			return
		}
		ro.Answer = runner.Answer{Values: step.Values, Node: step.Node, Empty: step.Values == nil}
		res, err = runner.Resume(ctx, st, res.RunID, ro)
		var ie *runner.InputError
		if errors.As(err, &ie) {
			// The answer was refused (no interrupt waits there, values
			// missing): the resume entry is what to fix, not the exit code.
			fail(step.Pos, "resume %s: %v", step.Node, err)
			return
		}
	}
	r.Exit = exitcode.Run(res, err)
	if res != nil {
		r.State = res.State
	}
	check(r, err, obs)
}

// observed tells obs which invocations stub answers.
func observed(stub func(path, node string, index int) (any, bool), obs *observer) func(path, node string, index int) (any, bool) {
	if stub == nil {
		return nil
	}
	return func(path, node string, index int) (any, bool) {
		v, ok := stub(path, node, index)
		if ok {
			obs.stub(path)
		}
		return v, ok
	}
}

// stubsFor returns the runner's stub lookup for c: a list gives the i-th
// result to the i-th item of a for_each node, or to the node's i-th
// invocation otherwise; a single result answers every invocation.
func stubsFor(c *Case) func(path, node string, index int) (any, bool) {
	if len(c.Stubs) == 0 {
		return nil
	}
	byNode := map[string]*Stub{}
	for _, s := range c.Stubs {
		byNode[s.Node] = s
	}
	var mu sync.Mutex
	visits := map[string]int{}
	return func(path, node string, index int) (any, bool) {
		s, ok := byNode[node]
		if !ok {
			return nil, false
		}
		if !s.List {
			return s.Results[0], true
		}
		i := index
		if i < 0 {
			mu.Lock()
			i = visits[node]
			visits[node]++
			mu.Unlock()
		}
		if i >= len(s.Results) {
			// More invocations than results: the node runs for real
			// (and, without a cassette, cannot reach the network).
			return nil, false
		}
		return s.Results[i], true
	}
}
