package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// payments is a test server with Stripe's idempotency semantics: a POST
// must carry an Idempotency-Key; a key seen before with the same body gets
// the first answer again (a replay), with another body 422. GET /hold
// answers only once its request is cancelled, the first time.
type payments struct {
	srv *httptest.Server

	mu        sync.Mutex
	bodies    map[string]string // key -> first body
	sent      map[string]int    // key -> requests
	keys      []string          // first arrival order
	conflicts int
	holds     int
	charged   chan string // each first charge's key, when not nil
}

func newPayments(t *testing.T) *payments {
	p := &payments{bodies: map[string]string{}, sent: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *payments) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hold" {
		p.mu.Lock()
		p.holds++
		first := p.holds == 1
		p.mu.Unlock()
		if first {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"held": true}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		http.Error(w, `{"error": "Idempotency-Key required"}`, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	prev, seen := p.bodies[key]
	p.sent[key]++
	switch {
	case !seen:
		p.bodies[key] = string(body)
		p.keys = append(p.keys, key)
	case prev != string(body):
		p.conflicts++
		p.mu.Unlock()
		http.Error(w, `{"error": "Keys for idempotent requests can only be used with the same parameters they were first used with."}`, http.StatusUnprocessableEntity)
		return
	}
	ch := p.charged
	p.mu.Unlock()
	if !seen && ch != nil {
		ch <- key
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// check fails t unless the server saw exactly the keys want, in any order,
// each once when once is true, and no conflicting reuse of a key.
func (p *payments) check(t *testing.T, want []string, once bool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	got := slices.Sorted(slices.Values(p.keys))
	if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("idempotency keys\n got %q\nwant %q", got, want)
	}
	if p.conflicts > 0 {
		t.Errorf("%d requests reused a key with other parameters (422)", p.conflicts)
	}
	for k, n := range p.sent {
		if once && n != 1 {
			t.Errorf("key %s sent %d times", k, n)
		}
	}
}

// writeWorkflows writes files into dir, with URL replaced by base.
func writeWorkflows(t *testing.T, dir, base string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		src = strings.ReplaceAll(strings.ReplaceAll(src, "\t", "  "), "URL", base)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func recordedPaths(t *testing.T, st store.Store, runID string) []string {
	t.Helper()
	invs, err := st.Invocations(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, inv := range invs {
		out = append(out, inv.Path)
	}
	slices.Sort(out)
	return out
}

// A POST node visited three times in a loop sends three keys (SPEC §9.1).
func TestIdempotencyKeysInALoop(t *testing.T) {
	pay := newPayments(t)
	g := compileYAML(t, strings.ReplaceAll(`
lgx: 1
name: loop
state:
  n: {type: integer, default: 0}
nodes:
  charge:
    type: http_fetch
    with: {url: "URL/charge", method: POST, json: {customer: cus_1, amount: 100}}
    output: {n: "${{ state.n + 1 }}"}
edges:
  - {from: START, to: charge}
  - from: charge
    when: [{if: "state.n < 3", to: charge}]
    else: END
`, "URL", pay.srv.URL))
	st := store.NewMemory()
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R1"})
	if err != nil || res.State["n"] != 3 {
		t.Fatalf("run: %v, state %v", err, res.State)
	}
	pay.check(t, []string{"lgx-R1-1/charge", "lgx-R1-2/charge", "lgx-R1-3/charge"}, true)
	if got := recordedPaths(t, st, "R1"); !slices.Equal(got, []string{"1/charge", "2/charge", "3/charge"}) {
		t.Errorf("recorded paths %q", got)
	}
}

const refundsWorkflow = `
lgx: 1
name: refunds
state:
  round: {type: integer, default: 0}
  calls: list
  out: {type: list, reducer: append, default: []}
tools:
  refund:
    description: Refund an order
    parameters: {type: object, properties: {order: {type: string}}, required: [order]}
    node: {type: http_fetch, with: {url: "URL/charge", method: POST, json: {refund: "${{ args.order }}"}}}
    output: ${{ result.json.refund }}
  hold:
    description: Wait for a person
    parameters: {type: object}
    node: {type: http_fetch, with: {url: "URL/hold"}}
    output: ${{ result.json.held }}
nodes:
  run_tools:
    type: tools
    with: {calls: "${{ state.calls[state.round] }}"}
    output: {out: "${{ result.messages }}", round: "${{ state.round + 1 }}"}
edges:
  - {from: START, to: run_tools}
  - from: run_tools
    when: [{if: "state.round < len(state.calls)", to: run_tools}]
    else: END
`

func toolCall(id, name, order string) map[string]any {
	args := map[string]any{}
	if order != "" {
		args["order"] = order
	}
	return map[string]any{"id": id, "name": name, "arguments": args}
}

// Two calls of one tool in one round, and two more in a second round, send
// four keys: each tool call is an invocation of its own.
func TestIdempotencyKeysOfToolCalls(t *testing.T) {
	pay := newPayments(t)
	g := compileYAML(t, strings.ReplaceAll(refundsWorkflow, "URL", pay.srv.URL))
	calls := []any{
		[]any{toolCall("call_1", "refund", "A"), toolCall("call_2", "refund", "B")},
		[]any{toolCall("call_3", "refund", "C"), toolCall("call_3", "refund", "D")}, // a repeated id
	}
	st := store.NewMemory()
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R2", Inputs: map[string]any{"calls": calls}})
	if err != nil {
		t.Fatal(err)
	}
	var contents []any
	for _, m := range res.State["out"].([]any) {
		contents = append(contents, m.(map[string]any)["content"])
	}
	if !reflect.DeepEqual(contents, []any{"A", "B", "C", "D"}) {
		t.Errorf("tool messages %v", contents)
	}
	pay.check(t, []string{"lgx-R2-1/run_tools/tool:call_1", "lgx-R2-1/run_tools/tool:call_2",
		"lgx-R2-2/run_tools/tool:call_3", "lgx-R2-2/run_tools/tool:#1"}, true)
	want := []string{"1/run_tools", "1/run_tools/tool:call_1", "1/run_tools/tool:call_2",
		"2/run_tools", "2/run_tools/tool:#1", "2/run_tools/tool:call_3"}
	if got := recordedPaths(t, st, "R2"); !slices.Equal(got, want) {
		t.Errorf("recorded paths\n got %q\nwant %q", got, want)
	}
}

// A tools node cancelled while one call waits resumes without calling the
// finished tool again.
func TestToolCallsReusedOnResume(t *testing.T) {
	pay := newPayments(t)
	pay.charged = make(chan string, 1)
	g := compileYAML(t, strings.ReplaceAll(refundsWorkflow, "URL", pay.srv.URL))
	calls := []any{[]any{toolCall("c1", "refund", "A"), toolCall("c2", "hold", "")}}
	st := store.NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-pay.charged
		// The charge's answer is on its way; give the tool time to record it.
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	res, err := Run(ctx, g, Options{Store: st, Environ: []string{}, RunID: "R3", Inputs: map[string]any{"calls": calls}})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("run: %v (%v)", err, res.Status)
	}
	if got := recordedPaths(t, st, "R3"); !slices.Equal(got, []string{"1/run_tools/tool:c1"}) {
		t.Fatalf("recorded before resume: %q", got)
	}
	res, err = Resume(context.Background(), st, "R3", Options{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := res.State["out"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["content"] != "A" || msgs[1].(map[string]any)["content"] != "true" {
		t.Errorf("messages %v", msgs)
	}
	pay.check(t, []string{"lgx-R3-1/run_tools/tool:c1"}, true)
}

const parentWorkflow = `
lgx: 1
name: parent
state:
  orders: list
  receipts: {type: list, reducer: append, default: []}
nodes:
  charge_each:
    type: subgraph
    for_each: ${{ state.orders }}
    as: order
    with: {workflow: ./child.yaml, input: {order: "${{ order }}"}}
    output: {receipts: "${{ result.receipt }}"}
edges:
  - {from: START, to: charge_each}
  - {from: charge_each, to: END}
`

const childWorkflow = `
lgx: 1
name: child
state:
  order: string
  receipt: string
nodes:
  charge:
    type: http_fetch
    with: {url: "URL/charge", method: POST, json: {order: "${{ state.order }}"}}
    output: {receipt: "${{ result.json.order }}"}
  confirm:
    type: probe
    with: {group: confirm, sleep_ms: "${{ state.order == 'B' ? 150 : 0 }}", fail: "${{ state.order == 'B' ? 'status' : '' }}", fail_times: 1, status: 400}
edges:
  - {from: START, to: charge}
  - {from: charge, to: confirm}
`

// The children of a for_each subgraph send different keys, are recorded
// under their paths, and a resume from another directory re-runs none of
// the finished ones (SPEC §9.1, §9.2).
func TestSubgraphChildrenDurable(t *testing.T) {
	pay := newPayments(t)
	resetGroup("confirm")
	dir := t.TempDir()
	writeWorkflows(t, dir, pay.srv.URL, map[string]string{"parent.yaml": parentWorkflow, "child.yaml": childWorkflow})
	t.Chdir(dir)
	g, err := LoadGraph("parent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	inputs := map[string]any{"orders": []any{"A", "B", "C"}}
	_, err = Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R4", Inputs: inputs})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != "charge_each" || ne.Index != 1 {
		t.Fatalf("want charge_each[1] to fail, got %v", err)
	}
	want := []string{"lgx-R4-1/charge_each[0]/1/charge", "lgx-R4-1/charge_each[1]/1/charge", "lgx-R4-1/charge_each[2]/1/charge"}
	pay.check(t, want, true)

	t.Chdir(t.TempDir()) // resume uses the recorded texts, not the disk
	if err := os.Remove(filepath.Join(dir, "child.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := Resume(context.Background(), st, "R4", Options{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.State["receipts"]; !reflect.DeepEqual(got, []any{"A", "B", "C"}) {
		t.Errorf("receipts %v", got)
	}
	pay.check(t, want, true)
	paths := recordedPaths(t, st, "R4")
	for _, p := range []string{"1/charge_each[1]/1/charge", "1/charge_each[1]/2/confirm", "1/charge_each[1]"} {
		if !slices.Contains(paths, p) {
			t.Errorf("no record of %s in %q", p, paths)
		}
	}
}

// An interrupt inside a subgraph pauses the whole run; resume answers it
// there (SPEC §9.2, §9.4).
func TestInterruptInsideSubgraph(t *testing.T) {
	dir := t.TempDir()
	writeWorkflows(t, dir, "", map[string]string{
		"main.yaml": `
lgx: 1
name: main
state:
  title: {type: string, default: launch}
  verdict: string
nodes:
  review:
    type: subgraph
    with: {workflow: sub/review.yaml, input: {what: "${{ state.title }}"}}
    output: {verdict: "${{ result.verdict }}"}
edges:
  - {from: START, to: review}
`,
		"sub/review.yaml": `
lgx: 1
name: review
state:
  what: string
  verdict: string
nodes:
  ask:
    type: interrupt
    with: {message: "approve ${{ state.what }}?"}
    output: {verdict: "${{ result.ok ? 'approved' : 'rejected' }}"}
edges:
  - {from: START, to: ask}
`})
	g, err := LoadGraph(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	log := &eventLog{}
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R5", Sink: log})
	if err != nil {
		t.Fatal(err)
	}
	want := []Interrupt{{Path: "1/review/1/ask", Node: "ask", Index: -1, Message: "approve launch?"}}
	if res.Status != store.StatusInterrupted || !reflect.DeepEqual(res.Interrupts, want) {
		t.Fatalf("status %s, interrupts %+v", res.Status, res.Interrupts)
	}
	if ev := log.named(EventInterrupt); len(ev) != 1 || ev[0].Path != "1/review/1/ask" || ev[0].Message != "approve launch?" {
		t.Errorf("interrupt events %+v", ev)
	}
	waiting, err := Waiting(context.Background(), st, "R5")
	if err != nil || !reflect.DeepEqual(waiting, want) {
		t.Errorf("Waiting = %+v, %v", waiting, err)
	}
	var ie *InputError
	if _, err := Resume(context.Background(), st, "R5", Options{Environ: []string{}}); !errors.As(err, &ie) || !strings.Contains(ie.Msg, "approve launch?") {
		t.Errorf("resume without an answer: %v", err)
	}
	res, err = Resume(context.Background(), st, "R5", Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": true}}})
	if err != nil || res.Status != store.StatusCompleted || res.State["verdict"] != "approved" {
		t.Fatalf("resume: %v, %s, %v", err, res.Status, res.State)
	}
}

// Two interrupts of one step are answered one at a time (SPEC §9.4).
func TestParallelInterruptsAnsweredOneAtATime(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: approvals
state:
  legal: boolean
  finance: boolean
nodes:
  legal_ok:
    type: interrupt
    with: {message: legal review}
    output: {legal: "${{ result.ok }}"}
  finance_ok:
    type: interrupt
    with: {message: finance review}
    output: {finance: "${{ result.ok }}"}
edges:
  - {from: START, to: [legal_ok, finance_ok]}
`)
	st := store.NewMemory()
	ctx := context.Background()
	res, err := Run(ctx, g, Options{Store: st, Environ: []string{}, RunID: "R6"})
	if err != nil || len(res.Interrupts) != 2 || res.Interrupts[0].Path != "1/legal_ok" || res.Interrupts[1].Path != "1/finance_ok" {
		t.Fatalf("run: %v, %+v", err, res.Interrupts)
	}
	yes := map[string]any{"ok": true}
	var ie *InputError
	if _, err := Resume(ctx, st, "R6", Options{Answer: Answer{Values: yes}}); !errors.As(err, &ie) ||
		!strings.Contains(ie.Msg, "1/legal_ok: legal review") || !strings.Contains(ie.Msg, "1/finance_ok: finance review") {
		t.Fatalf("an answer for two interrupts: %v", err)
	}
	res, err = Resume(ctx, st, "R6", Options{Answer: Answer{Values: yes, Node: "legal_ok"}})
	if err != nil || res.Status != store.StatusInterrupted || len(res.Interrupts) != 1 || res.Interrupts[0].Path != "1/finance_ok" {
		t.Fatalf("after answering legal: %v, %s, %+v", err, res.Status, res.Interrupts)
	}
	if _, err := Resume(ctx, st, "R6", Options{Answer: Answer{Values: yes, Node: "legal_ok"}}); !errors.As(err, &ie) {
		t.Fatalf("a second answer to legal_ok: %v", err)
	}
	res, err = Resume(ctx, st, "R6", Options{Answer: Answer{Empty: true}})
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("after answering finance: %v, %s", err, res.Status)
	}

	if res.State["legal"] != true || res.State["finance"] != nil {
		t.Errorf("state %v", res.State)
	}
}

// A workflow that can call itself is invalid, naming the cycle; nesting
// deeper than 16 fails with kind limit (SPEC §9.2).
func TestSubgraphCyclesAndDepth(t *testing.T) {
	sub := func(name, next string) string {
		return fmt.Sprintf(`
lgx: 1
name: %s
state: {x: any}
nodes:
  call: {type: subgraph, with: {workflow: %s}}
edges:
  - {from: START, to: call}
`, name, next)
	}
	dir := t.TempDir()
	writeWorkflows(t, dir, "", map[string]string{
		"self.yaml": sub("self", "./self.yaml"),
		"a.yaml":    sub("a", "b.yaml"),
		"b.yaml":    sub("b", "a.yaml"),
	})
	for _, tc := range []struct{ file, cycle string }{
		{"self.yaml", "self.yaml → " + filepath.Join(dir, "self.yaml")},
		{"a.yaml", filepath.Join(dir, "a.yaml") + " → " + filepath.Join(dir, "b.yaml") + " → " + filepath.Join(dir, "a.yaml")},
	} {
		w, _, err := spec.LoadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		err = CheckSubgraphs(w)
		var iwe *InvalidWorkflowError
		if !errors.As(err, &iwe) || iwe.Diagnostics[0].Code != "subgraph-cycle" || !strings.Contains(err.Error(), "subgraph cycle") {
			t.Errorf("%s: %v", tc.file, err)
		}
	}

	// A chain of 18 distinct files nests 17 deep.
	files := map[string]string{}
	for i := range 18 {
		next := fmt.Sprintf("c%d.yaml", i+1)
		files[fmt.Sprintf("c%d.yaml", i)] = sub(fmt.Sprintf("c%d", i), next)
	}
	files["c18.yaml"] = "lgx: 1\nname: c18\nstate: {x: any}\nnodes:\n  done: {type: set}\nedges:\n  - {from: START, to: done}\n"
	writeWorkflows(t, dir, "", files)
	g, err := LoadGraph(filepath.Join(dir, "c0.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), g, Options{Environ: []string{}})
	if nodes.KindOf(err) != nodes.KindLimit || !strings.Contains(err.Error(), "deeper than 16") {
		t.Errorf("17 nested subgraphs: %v", err)
	}
	// The files alone make it fail: a resume would too (no resume hint).
	var ne *NodeError
	if !errors.As(err, &ne) || !ne.Repeats {
		t.Errorf("17 nested subgraphs: %#v does not say a resume repeats it", err)
	}
	g, err = LoadGraph(filepath.Join(dir, "c2.yaml")) // 15 deep
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), g, Options{Environ: []string{}}); err != nil {
		t.Errorf("15 nested subgraphs: %v", err)
	}
}

// Messages written without an id get one from the writing invocation's
// path and position (SPEC §9.6).
func TestMessageIDsFromPaths(t *testing.T) {
	res, err := runYAML(t, `
lgx: 1
name: msgs
state:
  messages: messages
  n: {type: integer, default: 0}
nodes:
  say:
    type: set
    output:
      messages: ["${{ {role: 'user', content: 'hi'} }}", "${{ {role: 'assistant', content: 'yo', id: 'mine'} }}"]
      n: "${{ state.n + 1 }}"
edges:
  - {from: START, to: say}
  - from: say
    when: [{if: "state.n < 2", to: say}]
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range res.State["messages"].([]any) {
		ids = append(ids, m.(map[string]any)["id"].(string))
	}
	if want := []string{"1/say#0", "mine", "2/say#0"}; !slices.Equal(ids, want) {
		t.Errorf("message ids %q, want %q", ids, want)
	}
}

func TestIdempotencyKeyDerivation(t *testing.T) {
	long := strings.Repeat("x", 300)
	sum := sha256.Sum256([]byte(long))
	for _, tc := range []struct{ path, want string }{
		{"3/charge[4]", "lgx-RUN-3/charge[4]"},
		{"3/approve_each[1]/2/charge[4]", "lgx-RUN-3/approve_each[1]/2/charge[4]"},
		{long, "lgx-RUN-" + hex.EncodeToString(sum[:])[:32]},
	} {
		if got := idempotencyKey("RUN", tc.path); got != tc.want || len(got) > maxIdempotencyKey {
			t.Errorf("idempotencyKey(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// renewLost is a store whose lease renewals report that another owner took
// the run.
type renewLost struct{ *store.Memory }

func (renewLost) RenewLease(context.Context, string, string, time.Time) error {
	return fmt.Errorf("renew: %w", store.ErrLeaseLost)
}

// A run whose lease another process took stops at once, mid-step, and
// records nothing more (SPEC §9.3). On the fake clock of a synctest bubble
// "at once" is exact: the run ends at the first renewal, TTL/3 in.
func TestRunStopsWhenItsLeaseIsLost(t *testing.T) {
	synctest.Test(t, testRunStopsWhenItsLeaseIsLost)
}

func testRunStopsWhenItsLeaseIsLost(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: lost
state: {x: any}
nodes:
  wait: {type: probe, with: {block: true}}
edges:
  - {from: START, to: wait}
`)
	st := renewLost{store.NewMemory()}
	start := time.Now()
	_, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, RunID: "R7", leaseTTL: 60 * time.Millisecond})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("err = %v, want the lost lease", err)
	}
	if d := time.Since(start); d != 20*time.Millisecond {
		t.Errorf("stopped after %v, want 20ms: at the first renewal, which found the lease lost", d)
	}
	run, _ := st.GetRun(context.Background(), "R7")
	if run.Status == store.StatusFailed || run.Status == store.StatusCompleted {
		t.Errorf("a process without the lease recorded the run as %s", run.Status)
	}
}
