package runner

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes/mcp"
	"github.com/lgx-run/lgx/store"
)

// mcpStepsWorkflow calls an MCP server in two steps: three items of a
// for_each under the server's pool, then one call reading their writes.
const mcpStepsWorkflow = `
lgx: 1
name: mcp-steps
pools:
	mcp: {concurrency: 2}
mcp:
	t: {command: not-started-in-tests, pool: mcp, timeout: 5s}
state:
	words: {type: list, default: [a, b, c]}
	got: {type: list, reducer: append}
	said: string
nodes:
	each:
		type: mcp_call
		for_each: ${{ state.words }}
		with: {server: t, tool: slow, arguments: {text: "${{ item }}"}}
		output: {got: "${{ [result.content.word] }}"}
	say:
		type: mcp_call
		concurrency: 1
		with: {server: t, tool: echo, arguments: {text: '${{ join(state.got, ",") }}'}}
		output: {said: "${{ result.text }}"}
edges:
	- {from: START, to: each}
	- {from: each, to: say}
	- {from: say, to: END}
`

// A run driven step by step, each step on StepRuns opened and closed
// again (as a worker's activities do), uses one session of the server
// for the whole run when they share an MCPSessions; a repeated
// invocation returns its record without calling the server; the plan
// carries the server's pool; the state is the local run's. Ending the run
// stops the server.
func TestMCPSessionsAcrossSteps(t *testing.T) {
	ctx := context.Background()
	g := compileYAML(t, mcpStepsWorkflow)

	local := newMCPTestServer()
	want, err := Run(ctx, g, Options{MCPTransport: local.transport, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}

	ts := newMCPTestServer()
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "M", nil, nil); err != nil {
		t.Fatal(err)
	}
	var sessions MCPSessions
	open := func() *StepRun {
		so := StepOptions{Environ: []string{}, MCP: &sessions}
		so.Options.MCPTransport = ts.transport
		s, err := OpenStep(ctx, st, "M", so)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var plans []*StepPlan
	for range 10 {
		s := open()
		p, err := s.Plan(ctx)
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if p.Done {
			break
		}
		plans = append(plans, p)
		inv := open()
		for _, pn := range p.Nodes {
			for k := range pn.Invocations() {
				idx := k
				if pn.Items < 0 {
					idx = -1
				}
				for n := range 2 { // the second, a retried activity, returns the record
					calls := ts.calls.Load()
					r, err := inv.InvokeOne(ctx, pn.Name, idx)
					if err != nil || r.Status != store.InvocationOK {
						t.Fatalf("invoke %s[%d]: %+v, %v", pn.Name, idx, r, err)
					}
					if r.Recorded != (n == 1) || n == 1 && ts.calls.Load() != calls {
						t.Errorf("invoke %s[%d] call %d: Recorded %v, server calls %d -> %d", pn.Name, idx, n+1, r.Recorded, calls, ts.calls.Load())
					}
				}
			}
		}
		inv.Close()
		c := open()
		res, err := c.CommitStep(ctx, p.Step)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != store.StatusRunning {
			sessions.End("M") // as the activity does when the run ends
			break
		}
		// The StepRuns of this step are closed: the server is not.
		if got := sessions.Active(); got != 1 {
			t.Errorf("after step %d: %d runs with sessions, want 1", p.Step, got)
		}
	}
	if len(plans) != 2 {
		t.Fatalf("%d steps planned, want 2", len(plans))
	}
	if got := ts.conns.Load(); got != 1 {
		t.Errorf("the server was connected %d times across the run's steps, want once", got)
	}
	if got := sessions.Active(); got != 0 {
		t.Errorf("after the run ended: %d runs with sessions, want 0", got)
	}
	for _, p := range plans {
		pn := p.Nodes[0]
		if !slices.Equal(pn.Pools, []string{"mcp"}) || !slices.Contains(p.Pools, PoolCap{Name: "mcp", Cap: 2}) {
			t.Errorf("step %d: node %s takes pools %v, step caps %+v; want the server's pool mcp (2)", p.Step, pn.Name, pn.Pools, p.Pools)
		}
	}
	if got := plans[1].Nodes[0].Cap; got != 1 {
		t.Errorf("node say: cap %d, want 1", got)
	}
	got, err := Outcome(ctx, st, "M", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(jsonOf(t, got.Output), jsonOf(t, want.Output)) || got.Status != store.StatusCompleted {
		t.Errorf("step by step: %s %s, local: %s", got.Status, jsonOf(t, got.Output), jsonOf(t, want.Output))
	}
	if said, _ := got.Output["said"].(string); said != "echo: a,b,c" {
		t.Errorf("said = %q", said)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A run's sessions stop once no call used them for Idle, never while one
// is in use; a later use starts the server again. Close stops them all
// and refuses later calls.
func TestMCPSessionsIdleAndClose(t *testing.T) {
	ctx := context.Background()
	ts := newMCPTestServer()
	s := &MCPSessions{Idle: 30 * time.Millisecond}
	d := mcpDecl{srv: mcp.Server{Name: "t", Command: "x"}, key: "t"}
	opts := mcp.Options{Transport: ts.transport}
	call := func(m *mcp.Manager) error {
		_, err := m.Call(ctx, "t", "echo", map[string]any{"text": "x"})
		return err
	}
	waitInactive := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); s.Active() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d runs with sessions after 5 s, want %d", s.Active(), want)
			}
		}
	}

	m, done := s.use("R1", d, opts)
	if err := call(m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * s.Idle) // in use all along: kept
	if s.Active() != 1 {
		t.Fatal("a session in use was stopped")
	}
	if err := call(m); err != nil {
		t.Fatalf("a session in use past Idle: %v", err)
	}
	m2, done2 := s.use("R1", d, opts)
	if m2 != m {
		t.Error("a second use of the run's declaration got another session")
	}
	done2()
	done()
	done() // once only
	waitInactive(0)
	if err := call(m); err == nil || !strings.Contains(err.Error(), "the run has ended") {
		t.Errorf("a call on a stopped session: %v, want it refused", err)
	}

	m, done = s.use("R1", d, opts)
	if err := call(m); err != nil {
		t.Fatalf("used again after idle: %v", err)
	}
	done()
	if got := ts.conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2 (one before the idle stop, one after)", got)
	}
	_, done = s.use("R2", d, opts)
	done()
	// End stops a run's sessions (in the background; Close waits for it).
	ended, done := s.use("R4", d, opts)
	if err := call(ended); err != nil {
		t.Fatal(err)
	}
	s.End("R4")
	s.mu.Lock()
	_, kept := s.runs["R4"]
	s.mu.Unlock()
	if kept {
		t.Error("an ended run's sessions are kept")
	}
	done()
	s.Close()
	if err := call(ended); err == nil || !strings.Contains(err.Error(), "the run has ended") {
		t.Errorf("a call on an ended run's session: %v, want it refused", err)
	}
	if s.Active() != 0 {
		t.Errorf("%d runs with sessions after Close", s.Active())
	}
	m, done = s.use("R3", d, opts)
	defer done()
	if err := call(m); err == nil {
		t.Error("a call after Close was served")
	}
	if s.Active() != 0 {
		t.Error("a use after Close was kept")
	}
	time.Sleep(3 * s.Idle) // no timer of a closed run fires into anything
}

// Without MCPSessions a StepRun's servers are its own: its Close stops
// them.
func TestStepRunClosesOwnMCP(t *testing.T) {
	ctx := context.Background()
	g := compileYAML(t, mcpStepsWorkflow)
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "O", nil, nil); err != nil {
		t.Fatal(err)
	}
	ts := newMCPTestServer()
	so := StepOptions{Environ: []string{}}
	so.Options.MCPTransport = ts.transport
	s, err := OpenStep(ctx, st, "O", so)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenStep(ctx, st, "O", so)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.InvokeOne(ctx, "each", 0); err != nil || r.Status != store.InvocationOK {
		t.Fatalf("invoke: %+v, %v", r, err)
	}
	m, done, err := s.r.mcpManager("t")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	s.Close()
	if _, err := m.Call(ctx, "t", "echo", map[string]any{"text": "x"}); err == nil || !strings.Contains(err.Error(), "the run has ended") {
		t.Errorf("a call after the StepRun's Close: %v, want it refused", err)
	}
}
