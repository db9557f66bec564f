package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/llmtest"
)

// scriptCmds are the custom commands available to testdata scripts. They
// start real HTTP servers on 127.0.0.1 inside the test process; each is
// closed when its script ends.
func scriptCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"docserver":    cmdDocServer,
		"docstats":     cmdDocStats,
		"expect-brief": cmdExpectBrief,
		"exits":        cmdExits,
		"llmserver":    cmdLLMServer,
		"llmstats":     cmdLLMStats,
		"echoserver":   cmdEchoServer, // secrets_script_test.go
		"noleak":       cmdNoLeak,
		"runid":        cmdRunID,
		"payserver":    cmdPayServer,
		"paystats":     cmdPayStats,
	}
}

// cmdExits: exits CODE PROG [ARGS…]. Runs PROG like exec and fails unless
// it exits with CODE; stdout and stderr stay available to later asserts.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// docServer serves /doc/NAME with a deterministic body, after an optional
// delay, and counts requests in flight so scripts can assert on caps.
type docServer struct {
	delay    time.Duration
	inFlight atomic.Int64
	mu       sync.Mutex
	max      int64
	requests int
	failed   map[string]bool // /flaky/ paths that failed once
}

func (d *docServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	d.mu.Lock()
	d.requests++
	if n > d.max {
		d.max = n
	}
	d.mu.Unlock()
	select {
	case <-time.After(d.delay):
	case <-r.Context().Done():
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/doc/")
	switch {
	case name == "status":
		d.mu.Lock()
		fmt.Fprintf(w, "max_in_flight=%d requests=%d\n", d.max, d.requests)
		d.mu.Unlock()
	case strings.HasPrefix(r.URL.Path, "/status/"):
		fmt.Fprintf(w, "%s: degraded", strings.TrimPrefix(r.URL.Path, "/status/"))
	case strings.HasPrefix(r.URL.Path, "/incidents/"):
		fmt.Fprintf(w, "%s: %s incidents this week", strings.TrimPrefix(r.URL.Path, "/incidents/"), r.URL.Query().Get("limit"))
	case strings.HasPrefix(r.URL.Path, "/flaky/"):
		// Fails the first request of each path (503), then serves it.
		d.mu.Lock()
		if d.failed == nil {
			d.failed = map[string]bool{}
		}
		first := !d.failed[r.URL.Path]
		d.failed[r.URL.Path] = true
		d.mu.Unlock()
		if first {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, docBody(strings.TrimPrefix(r.URL.Path, "/flaky/")))
	case strings.HasPrefix(name, "code"):
		code, _ := strconv.Atoi(strings.TrimPrefix(name, "code"))
		http.Error(w, "forced status", code)
	default:
		io.WriteString(w, docBody(name))
	}
}

// docBody is the body the document server sends for /doc/NAME: longer than
// the 800 characters the research example keeps.
func docBody(name string) string {
	return fmt.Sprintf("Document %s. %s", name, strings.Repeat(name+" ", 300))
}

// cmdDocServer: docserver VAR [delay]. Starts a document server and sets
// $VAR to its base URL.
func cmdDocServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: docserver VAR [delay]")
	}
	d := &docServer{}
	if len(args) > 1 {
		var err error
		if d.delay, err = time.ParseDuration(args[1]); err != nil {
			ts.Fatalf("docserver: %v", err)
		}
	}
	srv := httptest.NewServer(d)
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.URL)
	docServers(ts)[args[0]] = d
}

func docServers(ts *testscript.TestScript) map[string]*docServer {
	return ts.Value("docservers").(map[string]*docServer)
}

// cmdDocStats: docstats VAR. Prints the server's request count and the
// maximum number of requests it had in flight at once.
func cmdDocStats(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: docstats VAR")
	}
	d := docServers(ts)[args[0]]
	if d == nil {
		ts.Fatalf("docstats: no server %s", args[0])
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(ts.Stdout(), "requests=%d max_in_flight=%d\n", d.requests, d.max)
}

// cmdExpectBrief: expect-brief FILE QUERY URL... Writes to FILE the brief
// workflows/research.yaml specifies for those URLs served by docserver:
// "Research brief for QUERY:", a blank line, then the first 1200
// characters of the documents joined by blank lines, each document being
// "Source: URL" and the first 800 characters of its body.
func cmdExpectBrief(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: expect-brief FILE QUERY URL...")
	}
	var docs []string
	for _, u := range args[2:] {
		name := u[strings.LastIndex(u, "/")+1:]
		docs = append(docs, "Source: "+u+"\n"+firstRunes(docBody(name), 800))
	}
	brief := "Research brief for " + args[1] + ":\n\n" + firstRunes(strings.Join(docs, "\n\n"), 1200) + "\n"
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(brief), 0o644); err != nil {
		ts.Fatalf("expect-brief: %v", err)
	}
}

func firstRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// cmdLLMServer: llmserver VAR. Starts the protocol-faithful OpenAI and
// Anthropic test server as an agent: asked a question, it calls
// service_status and recent_incidents for "payments" in parallel; given
// the tool results (in either API's shape), it answers with them. $VAR is
// the OpenAI base URL (ending in /v1); $VAR_ROOT the server root for
// Anthropic.
func cmdLLMServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: llmserver VAR")
	}
	srv, err := llmtest.Start(llmtest.Script{Respond: func(r llmtest.Request) llmtest.Reply {
		if !r.LastIsToolResult() {
			return llmtest.Reply{
				ToolCalls: []llmtest.ToolCall{
					{ID: "call_1", Name: "service_status", Arguments: `{"service": "payments"}`},
					{ID: "call_2", Name: "recent_incidents", Arguments: `{"service": "payments", "limit": 2}`},
				},
				Usage: &llmtest.Usage{InputTokens: 50, OutputTokens: 20},
			}
		}
		return llmtest.Reply{Text: "Answer: " + strings.Join(r.ToolResults(), "; "), Usage: &llmtest.Usage{InputTokens: 80, OutputTokens: 12}}
	}})
	if err != nil {
		ts.Fatalf("llmserver: %v", err)
	}
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.OpenAIURL())
	ts.Setenv(args[0]+"_ROOT", srv.AnthropicURL())
	if m, ok := ts.Value("llmservers").(map[string]*llmtest.Server); ok {
		m[args[0]] = srv
	}
}

// cmdLLMStats: llmstats VAR. Prints how many requests the llmserver
// started as VAR received.
func cmdLLMStats(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: llmstats VAR")
	}
	m, _ := ts.Value("llmservers").(map[string]*llmtest.Server)
	srv := m[args[0]]
	if srv == nil {
		ts.Fatalf("llmstats: no server %s", args[0])
	}
	fmt.Fprintf(ts.Stdout(), "requests=%d\n", len(srv.Requests()))
}
