package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdEventShape: eventshape [-drop EVENT] FILE. Reads the last command's stdout, lines
// of `--stream events`, and writes to FILE each event without what differs
// between two runs of one workflow (run id, times, durations, retry
// delays), sorted: the events of a local run and of the same run on
// Temporal, where parallel invocations interleave differently, compare
// equal when every event is there, with the same fields, as often.
//
// With -drop EVENT, events of that kind are left out.
func cmdEventShape(ts *testscript.TestScript, neg bool, args []string) {
	drop := ""
	if len(args) == 3 && args[0] == "-drop" {
		drop, args = args[1], args[2:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: eventshape [-drop EVENT] FILE")
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(ts.ReadFile("stdout")))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["event"] == nil || ev["event"] == drop {
			continue // not an event (the run's output), or one left out
		}
		for _, k := range []string{"run", "ts", "duration_ms", "delay_ms"} {
			delete(ev, k)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ev); err != nil {
			ts.Fatalf("eventshape: %v", err)
		}
		lines = append(lines, b.String())
	}
	if len(lines) == 0 {
		ts.Fatalf("eventshape: no events in stdout")
	}
	slices.Sort(lines)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Join(lines, "")), 0o644))
}

// cmdFlakyReset: flakyreset VAR. Makes docserver VAR's /flaky/ paths fail
// once more each, so that a second run meets the failures the first met.
func cmdFlakyReset(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: flakyreset VAR")
	}
	d := docServers(ts)[args[0]]
	if d == nil {
		ts.Fatalf("flakyreset: no server %s", args[0])
	}
	d.mu.Lock()
	d.failed = nil
	d.mu.Unlock()
}
