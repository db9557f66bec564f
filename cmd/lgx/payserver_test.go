package main

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// payServer is a payments API with Stripe's idempotency semantics: every
// POST must carry an Idempotency-Key; a key seen before with the same body
// gets the first answer again (a replay), with another body 422. It echoes
// the JSON body. A delay slows every answer (for scripts that race two
// processes).
type payServer struct {
	delay time.Duration

	mu      sync.Mutex
	bodies  map[string]string // key -> first body
	sent    map[string]int    // key -> requests
	replays int
	refused int // 422s
}

func (p *payServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	if r.Method != http.MethodPost || key == "" {
		http.Error(w, `{"error": {"message": "POST with an Idempotency-Key"}}`, http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	prev, seen := p.bodies[key]
	p.sent[key]++
	switch {
	case !seen:
		p.bodies[key] = string(body)
	case prev == string(body):
		p.replays++
	default:
		p.refused++
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, `{"error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}}`)
		return
	}
	p.mu.Unlock()
	select {
	case <-time.After(p.delay):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// cmdPayServer: payserver VAR [delay]. Starts a payments server and sets
// $VAR to its base URL.
func cmdPayServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: payserver VAR [delay]")
	}
	p := &payServer{bodies: map[string]string{}, sent: map[string]int{}}
	if len(args) > 1 {
		var err error
		if p.delay, err = time.ParseDuration(args[1]); err != nil {
			ts.Fatalf("payserver: %v", err)
		}
	}
	srv := httptest.NewServer(p)
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.URL)
	servers := ts.Value("payservers").(map[string]*payServer)
	servers[args[0]] = p
}

// cmdPayStats: paystats VAR. Prints each idempotency key the server saw
// with how many requests carried it, sorted, then the replay and refusal
// counts: "key KEY sent N" lines and "replays=R refused=F".
func cmdPayStats(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: paystats VAR")
	}
	p, ok := ts.Value("payservers").(map[string]*payServer)[args[0]]
	if !ok {
		ts.Fatalf("paystats: no server %s", args[0])
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := slices.Sorted(maps.Keys(p.sent))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "key %s sent %d\n", k, p.sent[k])
	}
	fmt.Fprintf(&b, "replays=%d refused=%d\n", p.replays, p.refused)
	fmt.Fprint(ts.Stdout(), b.String())
}
