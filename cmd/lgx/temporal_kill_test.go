package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/llmtest"
)

// The commands of testdata/temporal/worker_kill.txtar: a server that
// records every request by Idempotency-Key and by the worker that sent it
// (the X-Lgx-Worker header, which the script's workflow fills from the
// worker's $LGX_TEST_WORKER), holds requests on demand, and kills the
// worker holding the most of them — so the script can tell exactly which
// invocations were in flight on the worker that died.
func keyServerCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"keyserver":  cmdKeyServer,
		"keygate":    cmdKeyGate,
		"waitkeys":   cmdWaitKeys,
		"killholder": cmdKillHolder,
		"keycheck":   cmdKeyCheck,
		"watchdog":   cmdWatchdog,
		"toolllm":    cmdToolLLM,
	}
}

// cmdToolLLM: toolllm VAR N TOOL. Starts a model server (OpenAI-compatible,
// internal/llmtest) that answers a conversation without tool results with
// N calls of TOOL, the i-th with arguments {"item": i}, and one with tool
// results with their contents joined by "; ". Sets $VAR to its base URL.
func cmdToolLLM(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: toolllm VAR N TOOL")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		ts.Fatalf("toolllm: bad count %q", args[1])
	}
	tool := args[2]
	srv, err := llmtest.Start(llmtest.Script{Respond: func(r llmtest.Request) llmtest.Reply {
		if !r.LastIsToolResult() {
			calls := make([]llmtest.ToolCall, n)
			for i := range calls {
				calls[i] = llmtest.ToolCall{ID: fmt.Sprintf("call_%d", i), Name: tool, Arguments: fmt.Sprintf(`{"item": %d}`, i)}
			}
			return llmtest.Reply{ToolCalls: calls, Usage: &llmtest.Usage{InputTokens: 40, OutputTokens: 10 * n}}
		}
		var results []string
		for _, m := range r.Messages() {
			if m["role"] == "tool" {
				results = append(results, fmt.Sprint(m["content"]))
			}
		}
		return llmtest.Reply{Text: strings.Join(results, "; "), Usage: &llmtest.Usage{InputTokens: 60, OutputTokens: 8}}
	}})
	if err != nil {
		ts.Fatalf("toolllm: %v", err)
	}
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.OpenAIURL())
}

// keyWait bounds every wait of these commands: generous for a loaded
// 2-core CI machine, short enough that a stuck run fails the test.
const keyWait = 60 * time.Second

// keyRequestState is where a request stands at the server.
type keyRequestState int

const (
	keyAnswering keyRequestState = iota // in its delay, will be answered
	keyHeld                             // waiting for the gate to open
	keyAnswered                         // response written
	keyAborted                          // the client went away first
)

func (s keyRequestState) String() string {
	return [...]string{"answering", "held", "answered", "aborted"}[s]
}

// keyRequest is one request the server received.
type keyRequest struct {
	key, worker, path string
	start             time.Time
	state             keyRequestState
}

// keyServer answers POST /item/N with "item N" after a delay. While armed
// (keygate), it answers a given number of requests and then holds every
// later one until killholder opens the gate; holding requests until the
// run's cap is full is what makes the kill land at a known point: every
// invocation the server answered has then been recorded (the workflow
// starts another only once one has completed, and an activity completes
// after its record is in the store).
type keyServer struct {
	delay time.Duration

	mu       sync.Mutex
	reqs     []*keyRequest // since the last keygate
	armed    bool
	answer   int           // requests still answered while armed
	gate     chan struct{} // closed when held requests may go on
	killed   string        // the worker killholder killed
	killAt   time.Time
	inFlight map[string]bool // keys held on the killed worker at the kill
}

func (k *keyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if r.Method != http.MethodPost || key == "" || !strings.HasPrefix(r.URL.Path, "/item/") {
		http.Error(w, "POST /item/N with an Idempotency-Key", http.StatusBadRequest)
		return
	}
	req := &keyRequest{key: key, worker: r.Header.Get("X-Lgx-Worker"), path: r.URL.Path, start: time.Now()}
	k.mu.Lock()
	k.reqs = append(k.reqs, req)
	gate := k.gate
	if k.armed {
		if k.answer > 0 {
			k.answer--
		} else {
			req.state = keyHeld
		}
	}
	k.mu.Unlock()
	if req.state == keyHeld {
		select {
		case <-gate:
			k.set(req, keyAnswering)
		case <-r.Context().Done():
			k.set(req, keyAborted)
			return
		}
	}
	select {
	case <-time.After(k.delay):
	case <-r.Context().Done():
		k.set(req, keyAborted)
		return
	}
	fmt.Fprintf(w, "item %s", strings.TrimPrefix(r.URL.Path, "/item/"))
	k.set(req, keyAnswered)
}

func (k *keyServer) set(req *keyRequest, s keyRequestState) {
	k.mu.Lock()
	req.state = s
	k.mu.Unlock()
}

// count returns how many requests are in state s, by worker.
func (k *keyServer) count(s keyRequestState) map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := map[string]int{}
	for _, r := range k.reqs {
		if r.state == s {
			n[r.worker]++
		}
	}
	return n
}

var keyServersByScript sync.Map // *testscript.TestScript → map[string]*keyServer

func keyServers(ts *testscript.TestScript) map[string]*keyServer {
	m, _ := keyServersByScript.LoadOrStore(ts, map[string]*keyServer{})
	return m.(map[string]*keyServer)
}

func keyServerArg(ts *testscript.TestScript, name string) *keyServer {
	k := keyServers(ts)[name]
	if k == nil {
		ts.Fatalf("no keyserver %s", name)
	}
	return k
}

// cmdKeyServer: keyserver VAR DELAY. Starts a key server answering after
// DELAY and sets $VAR to its base URL.
func cmdKeyServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: keyserver VAR DELAY")
	}
	delay, err := time.ParseDuration(args[1])
	if err != nil {
		ts.Fatalf("keyserver: %v", err)
	}
	// Not armed: the gate is open and nothing is held.
	k := &keyServer{delay: delay, gate: make(chan struct{})}
	close(k.gate)
	srv := httptest.NewServer(k)
	ts.Defer(func() {
		k.mu.Lock()
		if k.armed { // a failed script: let held handlers end
			k.armed = false
			close(k.gate)
		}
		k.mu.Unlock()
		srv.Close()
		keyServersByScript.Delete(ts)
	})
	ts.Setenv(args[0], srv.URL)
	keyServers(ts)[args[0]] = k
}

// cmdKeyGate: keygate VAR N. Forgets the requests received so far, then
// answers the next N requests and holds every later one (until
// killholder).
func cmdKeyGate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: keygate VAR N")
	}
	k := keyServerArg(ts, args[0])
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		ts.Fatalf("keygate: bad count %q", args[1])
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.armed {
		ts.Fatalf("keygate: %s is already armed", args[0])
	}
	k.reqs, k.armed, k.answer, k.gate = nil, true, n, make(chan struct{})
}

// cmdWaitKeys: waitkeys VAR held N. Waits until the server holds N
// requests at once.
func cmdWaitKeys(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || args[1] != "held" {
		ts.Fatalf("usage: waitkeys VAR held N")
	}
	k := keyServerArg(ts, args[0])
	n, err := strconv.Atoi(args[2])
	if err != nil {
		ts.Fatalf("waitkeys: bad count %q", args[2])
	}
	for deadline := time.Now().Add(keyWait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		held := 0
		for _, c := range k.count(keyHeld) {
			held += c
		}
		if held >= n {
			return
		}
	}
	ts.Fatalf("waitkeys: %s held fewer than %d requests at once in %v (held by worker: %v)", args[0], n, keyWait, k.count(keyHeld))
}

// cmdKillHolder: killholder VAR W1 W2. Of the background workers started
// with LGX_TEST_WORKER=W1 and =W2, sends SIGKILL to the one whose requests
// the server holds most of (W1 on a tie), waits until the server has seen
// each of those requests aborted by the dying process, then opens the
// gate, so that the other worker's held requests are answered. Sets
// $KILLED and $SURVIVOR to the workers' names and prints what it killed.
func cmdKillHolder(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: killholder VAR W1 W2")
	}
	k := keyServerArg(ts, args[0])
	held := k.count(keyHeld)
	victim, survivor := args[1], args[2]
	if held[survivor] > held[victim] {
		victim, survivor = survivor, victim
	}
	if held[victim] == 0 {
		ts.Fatalf("killholder: neither %s nor %s has a held request (held by worker: %v)", args[1], args[2], held)
	}
	var proc *os.Process
	for _, c := range ts.BackgroundCmds() {
		// The environment the process started with: testscript's
		// exec.Cmd.Env may share its backing array with later env
		// commands, so it can name a later worker.
		if c.Process == nil {
			continue
		}
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.Process.Pid))
		if err != nil {
			ts.Fatalf("killholder: which worker is process %d: %v", c.Process.Pid, err)
		}
		if envValue(strings.Split(string(environ), "\x00"), "LGX_TEST_WORKER") == victim {
			proc = c.Process
		}
	}
	if proc == nil {
		ts.Fatalf("killholder: no background command with LGX_TEST_WORKER=%s", victim)
	}
	k.mu.Lock()
	k.killed, k.inFlight = victim, map[string]bool{}
	var victimReqs []*keyRequest
	for _, r := range k.reqs {
		// Only held requests: the cap is full of them, so every request
		// answered before is recorded (one still marked answering has
		// had its response written already).
		if r.worker == victim && r.state == keyHeld {
			k.inFlight[r.key] = true
			victimReqs = append(victimReqs, r)
		}
	}
	k.killAt = time.Now()
	// Killed under the lock: no request of the victim changes state
	// between the snapshot and the kill.
	err := proc.Signal(os.Kill)
	k.mu.Unlock()
	ts.Check(err)
	for deadline := time.Now().Add(keyWait); ; time.Sleep(10 * time.Millisecond) {
		k.mu.Lock()
		aborted := 0
		for _, r := range victimReqs {
			if r.state == keyAborted {
				aborted++
			}
		}
		k.mu.Unlock()
		if aborted == len(victimReqs) {
			break
		}
		if time.Now().After(deadline) {
			ts.Fatalf("killholder: only %d of the %d requests in flight on the killed worker %s were aborted in %v", aborted, len(victimReqs), victim, keyWait)
		}
	}
	k.mu.Lock()
	k.armed = false
	close(k.gate)
	k.mu.Unlock()
	ts.Setenv("KILLED", victim)
	ts.Setenv("SURVIVOR", survivor)
	ts.Logf("killholder: killed worker %s with %d requests in flight (%d held on %s)", victim, len(victimReqs), held[survivor], survivor)
	fmt.Fprintf(ts.Stdout(), "killed worker %s with %d invocations in flight\n", victim, len(victimReqs))
}

// cmdKeyCheck: keycheck VAR N. Checks what the server saw since keygate:
// N keys, each always for the same item; each sent once — except the keys
// in flight on the worker killholder killed, each sent exactly once more,
// after the kill, by the survivor; every key answered in the end. Prints
// a summary and logs how long Temporal took to re-send the killed
// worker's first invocation.
func cmdKeyCheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: keycheck VAR N")
	}
	k := keyServerArg(ts, args[0])
	want, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("keycheck: bad count %q", args[1])
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.killed == "" {
		ts.Fatalf("keycheck: killholder has not run")
	}
	problems, resent, detect := checkKeys(k.reqs, want, k.killed, k.killAt, k.inFlight)
	if len(problems) > 0 {
		ts.Fatalf("keycheck:\n  %s", strings.Join(problems, "\n  "))
	}
	ts.Logf("keycheck: %d keys, %d requests; %d re-sent, the first %v after the kill", want, len(k.reqs), resent, detect.Round(time.Millisecond))
	fmt.Fprintf(ts.Stdout(), "keys=%d each sent once, or twice if in flight on the killed worker\n", want)
}

// cmdWatchdog: watchdog DURATION. If the script is still running
// DURATION from now, kills the background commands started so far, so
// that a run that never ends fails its wait at once rather than hanging
// the test until go test's own timeout.
func cmdWatchdog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: watchdog DURATION")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("watchdog: %v", err)
	}
	// Taken here, on the script's goroutine: testscript's list of
	// background commands is not safe to read from the timer's.
	var procs []*os.Process
	for _, c := range ts.BackgroundCmds() {
		if c.Process != nil {
			procs = append(procs, c.Process)
		}
	}
	fired := make(chan struct{})
	t := time.AfterFunc(d, func() {
		close(fired)
		for _, p := range procs {
			_ = p.Kill() // some have ended already
		}
	})
	ts.Defer(func() {
		if !t.Stop() {
			<-fired
			ts.Logf("watchdog: the script ran past %v; its background commands were killed", d)
		}
	})
}

// envValue is name's value in env, a process's environment list: the last
// assignment wins, as for a process started with it.
func envValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, name+"="); ok {
			v = val
		}
	}
	return v
}

// checkKeys checks the requests a key server saw against want keys and
// the kill of worker killed at killAt, with inFlight the keys it held
// then; it returns what is wrong, how many keys were re-sent and how long
// after the kill the first re-sent request came.
func checkKeys(reqs []*keyRequest, want int, killed string, killAt time.Time, inFlight map[string]bool) (problems []string, resent int, detect time.Duration) {
	byKey := map[string][]*keyRequest{}
	for _, r := range reqs {
		byKey[r.key] = append(byKey[r.key], r)
	}
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if len(byKey) != want {
		bad("%d keys, want %d", len(byKey), want)
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		rs := byKey[key]
		last := rs[len(rs)-1]
		if last.state != keyAnswered {
			bad("key %s: its last request was %s, not answered", key, last.state)
		}
		for _, r := range rs[1:] {
			if r.path != rs[0].path {
				bad("key %s was sent for %s and for %s", key, rs[0].path, r.path)
			}
		}
		switch {
		case len(rs) == 1 && inFlight[key]:
			bad("key %s (%s) was in flight on the killed worker but never re-sent", key, rs[0].path)
		case len(rs) == 1:
		case !inFlight[key]:
			bad("key %s (%s) was sent %d times but was not in flight on the killed worker at the kill (first request %s, by worker %s)",
				key, rs[0].path, len(rs), rs[0].state, rs[0].worker)
		case len(rs) > 2:
			bad("key %s (%s) was in flight on the killed worker and re-sent %d times, want once", key, rs[0].path, len(rs)-1)
		default:
			resent++
			again := rs[1]
			if again.worker == killed || again.start.Before(killAt) {
				bad("key %s (%s) was re-sent by worker %s at %v; want by another than the killed %s, after the kill at %v",
					key, rs[0].path, again.worker, again.start.Format(time.StampMilli), killed, killAt.Format(time.StampMilli))
			}
			if d := again.start.Sub(killAt); detect == 0 || d < detect {
				detect = d
			}
		}
	}
	if len(inFlight) == 0 {
		bad("nothing was in flight on the killed worker: the kill tested nothing")
	}
	return problems, resent, detect
}

// keycheck must fail when the guarantee breaks: a key answered before the
// kill sent again, an in-flight key lost or sent twice more, a key reused
// for another item, a key missing.
func TestCheckKeys(t *testing.T) {
	kill := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	before, after := kill.Add(-time.Second), kill.Add(10*time.Second)
	req := func(key, worker string, at time.Time, s keyRequestState) *keyRequest {
		return &keyRequest{key: key, worker: worker, path: "/item/" + key, start: at, state: s}
	}
	// k0 answered by a, k1 answered by b, k2 held on b at the kill.
	base := func() []*keyRequest {
		return []*keyRequest{req("k0", "a", before, keyAnswered), req("k1", "b", before, keyAnswered), req("k2", "b", before, keyAborted)}
	}
	inFlight := map[string]bool{"k2": true}
	tests := []struct {
		name     string
		reqs     []*keyRequest
		want     int
		inFlight map[string]bool
		problem  string // "" = none
		resent   int
	}{
		{name: "in-flight key re-sent once by the survivor",
			reqs: append(base(), req("k2", "a", after, keyAnswered)), want: 3, inFlight: inFlight, resent: 1},
		{name: "answered key sent again",
			reqs: append(base(), req("k2", "a", after, keyAnswered), req("k0", "a", after, keyAnswered)), want: 3, inFlight: inFlight,
			problem: "key k0 (/item/k0) was sent 2 times but was not in flight on the killed worker"},
		{name: "in-flight key never re-sent",
			reqs: base(), want: 3, inFlight: inFlight,
			problem: "key k2 (/item/k2) was in flight on the killed worker but never re-sent"},
		{name: "in-flight key re-sent twice",
			reqs: append(base(), req("k2", "a", after, keyAborted), req("k2", "a", after, keyAnswered)), want: 3, inFlight: inFlight,
			problem: "re-sent 2 times, want once"},
		{name: "re-sent before the kill",
			reqs: append(base(), req("k2", "a", before, keyAnswered)), want: 3, inFlight: inFlight,
			problem: "want by another than the killed b, after the kill"},
		{name: "key reused for another item",
			reqs: append(base(), &keyRequest{key: "k2", worker: "a", path: "/item/9", start: after, state: keyAnswered}), want: 3, inFlight: inFlight,
			problem: "key k2 was sent for /item/k2 and for /item/9"},
		{name: "key missing",
			reqs: append(base(), req("k2", "a", after, keyAnswered)), want: 4, inFlight: inFlight,
			problem: "3 keys, want 4"},
		{name: "nothing in flight",
			reqs: []*keyRequest{req("k0", "a", before, keyAnswered)}, want: 1, inFlight: map[string]bool{},
			problem: "the kill tested nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems, resent, detect := checkKeys(tt.reqs, tt.want, "b", kill, tt.inFlight)
			got := strings.Join(problems, "\n")
			switch {
			case tt.problem == "" && got != "":
				t.Fatalf("problems:\n%s", got)
			case tt.problem != "" && !strings.Contains(got, tt.problem):
				t.Fatalf("problems:\n%s\nwant one saying %q", got, tt.problem)
			}
			if tt.problem == "" && (resent != tt.resent || detect != after.Sub(kill)) {
				t.Errorf("resent %d after %v, want %d after %v", resent, detect, tt.resent, after.Sub(kill))
			}
		})
	}
}
