package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/term"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
)

var updateViews = flag.Bool("update-views", false, "rewrite testdata/view_*.golden")

// t0 is the scripted run's start; events are stamped relative to it.
var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

func idx(i int) *int { return &i }

// script is a run of a small workflow: a fan-out of two set nodes, a
// for_each fetch with waits, a retry and a failure (on_error: continue),
// an llm_call streaming tokens, then an interrupt.
func script() []runner.Event {
	return []runner.Event{
		{Event: runner.EventRunStart, TS: at(0), Workflow: "demo"},
		{Event: runner.EventStepStart, TS: at(1), Step: 1, Nodes: []string{"english", "french"}},
		{Event: runner.EventNodeStart, TS: at(1.1), Step: 1, Node: "english"},
		{Event: runner.EventNodeStart, TS: at(1.2), Step: 1, Node: "french"},
		{Event: runner.EventNodeEnd, TS: at(1.4), Step: 1, Node: "english"},
		{Event: runner.EventNodeEnd, TS: at(1.7), Step: 1, Node: "french"},
		{Event: runner.EventCheckpoint, TS: at(2), Step: 1, Nodes: []string{"fetch"}},
		{Event: runner.EventStepStart, TS: at(3), Step: 2, Nodes: []string{"fetch"}},
		{Event: runner.EventNodeStart, TS: at(3), Step: 2, Node: "fetch", Index: idx(0)},
		{Event: runner.EventNodeStart, TS: at(3), Step: 2, Node: "fetch", Index: idx(1)},
		{Event: runner.EventNodeStart, TS: at(3), Step: 2, Node: "fetch", Index: idx(2)},
		{Event: runner.EventNodeStart, TS: at(3), Step: 2, Node: "fetch", Index: idx(3)},
		{Event: runner.EventAcquired, TS: at(3), Step: 2, Node: "fetch", Index: idx(0)},
		{Event: runner.EventAcquired, TS: at(3), Step: 2, Node: "fetch", Index: idx(1)},
		{Event: runner.EventWait, TS: at(3), Step: 2, Node: "fetch", Index: idx(2), Waiting: "node"},
		{Event: runner.EventWait, TS: at(3), Step: 2, Node: "fetch", Index: idx(3), Waiting: "pool web"},
		{Event: runner.EventNodeEnd, TS: at(123), Step: 2, Node: "fetch", Index: idx(0), DurationMS: 120},
		{Event: runner.EventAcquired, TS: at(123), Step: 2, Node: "fetch", Index: idx(2), DurationMS: 120},
		{Event: runner.EventAcquired, TS: at(130), Step: 2, Node: "fetch", Index: idx(3), DurationMS: 127},
		{Event: runner.EventRetry, TS: at(200), Step: 2, Node: "fetch", Index: idx(1), Attempt: 1, DelayMS: 500, Kind: "timeout", Error: "attempt timed out after 200ms"},
		{Event: runner.EventNodeEnd, TS: at(253), Step: 2, Node: "fetch", Index: idx(3), Kind: "status", Error: "GET http://127.0.0.1/doc/3:\n404 Not Found"},
		{Event: runner.EventNodeEnd, TS: at(400), Step: 2, Node: "fetch", Index: idx(2)},
		{Event: runner.EventNodeEnd, TS: at(900), Step: 2, Node: "fetch", Index: idx(1)},
		{Event: runner.EventStepStart, TS: at(901), Step: 3, Nodes: []string{"write"}},
		{Event: runner.EventNodeStart, TS: at(901), Step: 3, Node: "write"},
		{Event: runner.EventAcquired, TS: at(901), Step: 3, Node: "write"},
		{Event: runner.EventToken, TS: at(1000), Step: 3, Node: "write", Token: "Dear reader,"},
		{Event: runner.EventToken, TS: at(1100), Step: 3, Node: "write", Token: "\nthe sources"},
		{Event: runner.EventToken, TS: at(1200), Step: 3, Node: "write", Token: " agree."},
		{Event: runner.EventNodeEnd, TS: at(2400), Step: 3, Node: "write", GenAI: []nodes.GenAIInfo{{InputTokens: 1000, OutputTokens: 300}, {InputTokens: 200, OutputTokens: 45}}}, // two model calls (a retry): usage sums
		{Event: runner.EventStepStart, TS: at(2401), Step: 4, Nodes: []string{"approve"}},
		{Event: runner.EventNodeStart, TS: at(2401), Step: 4, Node: "approve"},
		{Event: runner.EventInterrupt, TS: at(2402), Step: 4, Node: "approve", Message: "Approve the brief?"},
		{Event: runner.EventRunEnd, TS: at(2403), Status: "interrupted"},
	}
}

func withRun(evs []runner.Event, id string) []runner.Event {
	for i := range evs {
		evs[i].Run = id
	}
	return evs
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestPlainViewGolden(t *testing.T) {
	var buf bytes.Buffer
	v := newPlainView(&buf, fixedClock(at(5000)))
	for _, e := range withRun(script(), "01JDEMO") {
		v.Emit(e)
	}
	v.Close()
	v.Emit(runner.Event{Event: runner.EventStepStart, Step: 9}) // after Close: ignored
	got := buf.String()
	if i := strings.IndexByte(got, 0x1b); i >= 0 {
		t.Fatalf("plain view wrote an escape byte at %d:\n%q", i, got)
	}
	golden := filepath.Join("testdata", "view_plain.golden")
	if *updateViews {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestPlainViewGolden -update-views)", err)
	}
	if got != string(want) {
		t.Errorf("plain view output differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

func TestPlainViewLines(t *testing.T) {
	tests := []struct {
		name string
		evs  []runner.Event
		want string
	}{
		{"step", []runner.Event{{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"a", "b"}}},
			"15:04:05.000 step 1: a, b\n"},
		{"node end measured from its start", []runner.Event{
			{Event: runner.EventNodeStart, TS: at(0), Node: "a"},
			{Event: runner.EventNodeEnd, TS: at(0.3), Node: "a", DurationMS: 0},
		}, "15:04:05.000 ✓ a 0.3ms\n"},
		{"node end without a start uses duration_ms", []runner.Event{
			{Event: runner.EventNodeEnd, TS: at(1500), Node: "a", Index: idx(2), DurationMS: 1500},
		}, "15:04:06.500 ✓ a[2] 1.50s\n"},
		{"error", []runner.Event{{Event: runner.EventNodeError, TS: at(0), Node: "f", Index: idx(3), Kind: "timeout", Error: "deadline\nexceeded"}},
			"15:04:05.000 ✗ f[3] [timeout] deadline exceeded\n"},
		{"retry", []runner.Event{{Event: runner.EventRetry, TS: at(0), Node: "f", Index: idx(3), Attempt: 1, DelayMS: 500}},
			"15:04:05.000 retry f[3] attempt 2 in 500ms\n"},
		{"wait for a pool", []runner.Event{{Event: runner.EventWait, TS: at(0), Node: "f", Waiting: "pool web"}},
			"15:04:05.000 f waits for pool web\n"},
		{"wait for the global cap", []runner.Event{{Event: runner.EventWait, TS: at(0), Node: "f", Waiting: "global"}},
			"15:04:05.000 f waits for the global cap\n"},
		{"interrupt", []runner.Event{{Event: runner.EventInterrupt, TS: at(0), Node: "ok", Message: "Go?"}},
			"15:04:05.000 ⏸ ok: Go?\n"},
		{"tokens, checkpoints and step ends print nothing", []runner.Event{
			{Event: runner.EventToken, TS: at(0), Node: "w", Token: "hi"},
			{Event: runner.EventCheckpoint, TS: at(0), Step: 1},
			{Event: runner.EventStepEnd, TS: at(0), Step: 1},
		}, ""},
		{"completed", []runner.Event{
			{Event: runner.EventRunStart, Run: "R1", TS: at(0), Workflow: "w"},
			{Event: runner.EventRunEnd, Run: "R1", TS: at(2500), Status: "completed"},
		}, "15:04:05.000 start w\n15:04:07.500 run completed in 2.50s\n"},
		{"failed", []runner.Event{
			{Event: runner.EventRunStart, Run: "R1", TS: at(0), Workflow: "w"},
			{Event: runner.EventRunEnd, Run: "R1", TS: at(10), Status: "failed", Error: "node f item 3: 404"},
		}, "15:04:05.000 start w\n15:04:05.010 run failed after 10ms\n"},
		{"cancelled invocation", []runner.Event{
			{Event: runner.EventNodeStart, TS: at(0), Node: "f", Index: idx(1)},
			{Event: runner.EventNodeError, TS: at(5), Node: "f", Index: idx(1), Attempt: 1, Kind: "cancelled", Error: "context canceled"},
		}, "15:04:05.005 - f[1] cancelled\n"},
		{"cancelled before its first attempt", []runner.Event{
			{Event: runner.EventNodeStart, TS: at(0), Node: "f", Index: idx(7)},
			{Event: runner.EventNodeError, TS: at(5), Node: "f", Index: idx(7), Kind: "cancelled", Error: "context canceled"},
		}, "15:04:05.005 - f[7] cancelled before it started\n"},
		{"work time and time queued for caps", []runner.Event{
			{Event: runner.EventNodeStart, TS: at(0), Node: "f", Index: idx(2)},
			{Event: runner.EventWait, TS: at(0), Node: "f", Index: idx(2), Waiting: "node"},
			{Event: runner.EventAcquired, TS: at(1500), Node: "f", Index: idx(2), DurationMS: 1500},
			{Event: runner.EventNodeEnd, TS: at(1620), Node: "f", Index: idx(2), Attempt: 1, DurationMS: 1620},
		}, "15:04:05.000 f[2] waits for the node's cap\n15:04:06.620 ✓ f[2] 120ms (queued 1.50s)\n"},
		{"cancelled", []runner.Event{
			{Event: runner.EventRunStart, Run: "R1", TS: at(0), Workflow: "w"},
			{Event: runner.EventRunEnd, Run: "R1", TS: at(10), Status: "cancelled"},
		}, "15:04:05.000 start w\n15:04:05.010 run cancelled after 10ms\n"},
		{"event without a time uses the clock", []runner.Event{{Event: runner.EventStepStart, Step: 2, Nodes: []string{"x"}}},
			"15:04:06.000 step 2: x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			v := newPlainView(&buf, fixedClock(at(1000)))
			for _, e := range tt.evs {
				v.Emit(e)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// feed applies events to a live view without drawing (no ticker).
func feed(v *liveView, evs []runner.Event) {
	for _, e := range evs {
		v.Emit(e)
	}
}

// screen renders the live view's block at now as plain text.
func screen(v *liveView, now time.Time) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	lines := v.block(now)
	for i, l := range lines {
		lines[i] = ansi.Strip(v.fit(l))
	}
	return strings.Join(lines, "\n")
}

func TestLiveViewBlock(t *testing.T) {
	evs := withRun(script(), "01JDEMO")
	find := func(pred func(runner.Event) bool) int {
		for i, e := range evs {
			if pred(e) {
				return i
			}
		}
		t.Fatal("event not in script")
		return 0
	}
	tests := []struct {
		name  string
		upto  int // events applied: evs[:upto]
		now   time.Time
		want  []string
		avoid []string
	}{
		{
			name: "fan-out in flight",
			upto: 4, now: at(1.3),
			want: []string{"demo · step 1 · english, french  1.3ms", "english  0.2ms", "french  0.1ms"},
		},
		{
			name: "for_each items waiting for slots",
			upto: find(func(e runner.Event) bool { return e.Event == runner.EventNodeEnd && e.Node == "fetch" }), now: at(100),
			want: []string{
				"✓ english  0.3ms", "✓ french  0.5ms",
				"fetch  [░░░░░░░░░░░░░░░░░░░░] 0/4 · 2 running · 2 waiting",
				"fetch[0]  97ms", "fetch[1]  97ms",
				"fetch[2]  waiting for the node's cap", "fetch[3]  waiting for pool web",
				"pool web: 2 in use · 1 waiting",
			},
		},
		{
			name: "a finished item hands its slots to the waiters",
			upto: find(func(e runner.Event) bool { return e.Event == runner.EventRetry }), now: at(150),
			want: []string{
				"fetch  [█████░░░░░░░░░░░░░░░] 1/4 · 3 running",
				"fetch[1]  147ms", "fetch[2]  27ms", "fetch[3]  20ms",
				"pool web: 3 in use",
			},
			avoid: []string{"fetch[0]", "waiting"},
		},
		{
			name: "retry countdown; no slot held while backing off",
			upto: find(func(e runner.Event) bool { return e.Event == runner.EventRetry }) + 1, now: at(300),
			want: []string{"1 retries", "fetch[1]  ↻ attempt 2 in 400ms (timeout)", "pool web: 2 in use"},
		},
		{
			name: "failure under on_error: continue",
			upto: find(func(e runner.Event) bool { return e.Event == runner.EventNodeEnd && e.Index != nil && *e.Index == 2 }), now: at(350),
			want: []string{"2/4 · 2 running · 1 failed · 1 retries"},
		},
		{
			name: "streamed tokens: last line",
			upto: find(func(e runner.Event) bool { return e.Event == runner.EventToken && e.Token == " agree." }) + 1, now: at(1300),
			want:  []string{"✗ fetch  4 runs · p50 123ms · max 897ms · queued up to 127ms · 1 failed · 1 retries", "write  399ms", "› the sources agree."},
			avoid: []string{"Dear reader"},
		},
		{
			name: "all finished",
			upto: len(evs), now: at(9999),
			want: []string{"demo · step 4 · approve  2.40s", "✓ write  1.50s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newLiveView(io.Discard, 100, true, fixedClock(tt.now), 0)
			feed(v, evs[:tt.upto])
			got := screen(v, tt.now)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("screen lacks %q:\n%s", w, got)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(got, a) {
					t.Errorf("screen has %q:\n%s", a, got)
				}
			}
		})
	}
}

func TestLiveViewFoldsFinishedNodesWhenTall(t *testing.T) {
	v := newLiveView(io.Discard, 80, false, fixedClock(at(100)), 0)
	var evs []runner.Event
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("n%02d", i)
		evs = append(evs, runner.Event{Event: runner.EventNodeStart, TS: at(0), Node: name},
			runner.Event{Event: runner.EventNodeEnd, TS: at(1), Node: name})
	}
	evs = append(evs, runner.Event{Event: runner.EventNodeError, TS: at(2), Node: "n05", Kind: "status", Error: "boom"},
		runner.Event{Event: runner.EventNodeStart, TS: at(3), Node: "last"})
	feed(v, evs)
	got := screen(v, at(100))
	if n := strings.Count(got, "\n") + 1; n > maxBlockLines {
		t.Errorf("block has %d lines, want at most %d:\n%s", n, maxBlockLines, got)
	}
	for _, w := range []string{"✓ 30 nodes done (1 with failures)", "last  97ms"} {
		if !strings.Contains(got, w) {
			t.Errorf("block lacks %q:\n%s", w, got)
		}
	}
}

func TestLiveViewTruncatesTokensToWidth(t *testing.T) {
	v := newLiveView(io.Discard, 40, false, fixedClock(at(10)), 0)
	long := strings.Repeat("word ", 30) + "THE END"
	feed(v, []runner.Event{
		{Event: runner.EventNodeStart, TS: at(0), Node: "llm"},
		{Event: runner.EventToken, TS: at(1), Node: "llm", Token: long},
	})
	got := screen(v, at(10))
	for _, l := range strings.Split(got, "\n") {
		if w := ansi.StringWidth(l); w > 39 {
			t.Errorf("line %q is %d cells wide, want at most 39", l, w)
		}
	}
	if !strings.Contains(got, "THE END") || !strings.Contains(got, "…") {
		t.Errorf("token line should keep the end of the text:\n%s", got)
	}
}

// TestLiveViewForEachTotal: the bar's total is the node's item count from
// step_start, not the highest item index seen so far.
func TestLiveViewForEachTotal(t *testing.T) {
	v := newLiveView(io.Discard, 100, false, fixedClock(at(10)), 0)
	one := 1
	feed(v, []runner.Event{
		{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"fetch"}, Items: map[string]int{"fetch": 10}},
		{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "fetch", Index: new(int)},
		{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "fetch", Index: &one},
		{Event: runner.EventNodeEnd, TS: at(2), Step: 1, Node: "fetch", Index: new(int)},
	})
	if got := screen(v, at(10)); !strings.Contains(got, "1/10") {
		t.Errorf("want progress 1/10 from step_start's item count:\n%s", got)
	}
}

func TestLiveViewRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	v := newLiveView(&buf, 80, false, fixedClock(at(2)), 0)
	feed(v, script()[:4])
	v.mu.Lock()
	v.draw()
	first := buf.Len()
	lines := v.lines
	v.draw()
	v.mu.Unlock()
	second := buf.String()[first:]
	if lines != 3 {
		t.Fatalf("first block has %d lines, want 3:\n%s", lines, buf.String()[:first])
	}
	if !strings.HasPrefix(second, "\x1b[3F\x1b[J") {
		t.Errorf("redraw should move up 3 lines and clear; got %q", second)
	}
	if strings.Count(second, "\n") != 3 {
		t.Errorf("redraw should draw 3 lines; got %q", second)
	}
}

func TestLiveViewCloseDrawsSummary(t *testing.T) {
	var buf bytes.Buffer
	v := newLiveView(&buf, 100, false, fixedClock(at(9999)), 0)
	feed(v, withRun(script(), "01JDEMO"))
	v.Close()
	v.Close() // idempotent
	out := ansi.Strip(buf.String())
	for _, w := range []string{
		"⏸ approve: Approve the brief?",
		"✗ fetch[3] [status] GET http://127.0.0.1/doc/3: 404 Not Found (on_error: continue)",
		"run paused at an interrupt after 2.40s",
		"NODE", "QUEUED", "TOKENS",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// The summary row of fetch: 4 runs, 1 failed, 1 retry, p50 and max of
	// the work time, the longest wait for caps, no model tokens.
	if !regexpMatch(`│\s*fetch\s*│\s*4\s*│\s*1\s*│\s*1\s*│\s*123ms\s*│\s*897ms\s*│\s*127ms\s*│\s*-\s*│`, out) {
		t.Errorf("summary lacks the fetch row:\n%s", out)
	}
	// write: the tokens its model call used (input/output), not the
	// number of streamed chunks.
	if !regexpMatch(`│\s*write\s*│\s*1\s*│\s*0\s*│\s*0\s*│\s*1\.50s\s*│\s*1\.50s\s*│\s*-\s*│\s*1200/345\s*│`, out) {
		t.Errorf("summary lacks the write row:\n%s", out)
	}
}

func TestLiveViewConcurrentEmitAndClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	v := newLiveView(w, 80, true, time.Now, time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := idx(g*1000 + i)
				v.Emit(runner.Event{Event: runner.EventNodeStart, TS: time.Now(), Node: "fetch", Index: k})
				v.Emit(runner.Event{Event: runner.EventToken, TS: time.Now(), Node: "fetch", Index: k, Token: "x"})
				v.Emit(runner.Event{Event: runner.EventNodeEnd, TS: time.Now(), Node: "fetch", Index: k})
			}
		}()
	}
	wg.Wait()
	v.Close()
	v.Emit(runner.Event{Event: runner.EventNodeStart, Node: "late"}) // after Close: ignored
	mu.Lock()
	out := ansi.Strip(buf.String())
	mu.Unlock()
	if !regexpMatch(`│\s*fetch\s*│\s*1600\s*│`, out) {
		t.Errorf("summary should count 1600 fetch runs:\n%s", out[max(0, len(out)-600):])
	}
	if strings.Contains(out, "late") {
		t.Error("an event after Close was drawn")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestLiveViewOnPseudoTerminal runs the live view on a real pseudo-terminal
// and reads what the terminal received.
func TestLiveViewOnPseudoTerminal(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer ptmx.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		t.Fatal("pty slave is not a terminal")
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 72}); err != nil {
		t.Fatal(err)
	}
	width, _, err := term.GetSize(int(tty.Fd()))
	if err != nil || width != 72 {
		t.Fatalf("terminal width = %d, %v; want 72", width, err)
	}
	var screenBuf bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		io.Copy(&screenBuf, ptmx) // ends with EIO once the tty side closes
	}()

	v := newLiveView(tty, width, true, time.Now, 5*time.Millisecond)
	now := time.Now()
	evs := withRun(script(), "01JPTY")
	for i := range evs {
		evs[i].TS = now.Add(evs[i].TS.Sub(t0))
	}
	mid := 0
	for evs[mid].Event != runner.EventNodeEnd || evs[mid].Node != "fetch" {
		mid++
	}
	for _, e := range evs[:mid] {
		v.Emit(e)
	}
	time.Sleep(30 * time.Millisecond) // a few redraws while items wait
	for _, e := range evs[mid:] {
		v.Emit(e)
	}
	v.Close()
	tty.Close()
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
		t.Fatal("reading the terminal did not finish")
	}
	raw := screenBuf.String()
	if !strings.Contains(raw, "\x1b[") {
		t.Error("the live view wrote no escape sequences to the terminal")
	}
	if !strings.Contains(raw, "F\x1b[J") {
		t.Error("the live view never redrew in place")
	}
	text := ansi.Strip(strings.ReplaceAll(raw, "\r", ""))
	for _, w := range []string{"demo · step 2 · fetch", "waiting for pool web", "✓ english", "✗ fetch[3] [status]",
		"✓ write", "run paused at an interrupt", "NODE", "RETRIES"} {
		if !strings.Contains(text, w) {
			t.Errorf("terminal shows no %q:\n%s", w, text)
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if w := ansi.StringWidth(l); w > 72 {
			t.Errorf("line wider than the terminal (%d): %q", w, l)
		}
	}
}

func TestProgressViewChoice(t *testing.T) {
	var buf bytes.Buffer
	plain := (&app{ios: &IOStreams{Err: &buf, Width: 80}}).progressView()
	if _, ok := plain.(*plainView); !ok {
		t.Errorf("non-terminal stderr got %T, want *plainView", plain)
	}
	plain.Close()
	live := (&app{ios: &IOStreams{Err: &buf, ErrTTY: true, Color: true, Width: 80}}).progressView()
	if _, ok := live.(*liveView); !ok {
		t.Errorf("terminal stderr got %T, want *liveView", live)
	}
	live.Close()
}

func TestFmtDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{300 * time.Microsecond, "0.3ms"},
		{9 * time.Millisecond, "9.0ms"},
		{120 * time.Millisecond, "120ms"},
		{1500 * time.Millisecond, "1.50s"},
		{12500 * time.Millisecond, "12.5s"},
		{125 * time.Second, "2m5s"},
		{-time.Second, "0ms"},
	}
	for _, tt := range tests {
		if got := fmtDuration(tt.d); got != tt.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range xs {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if got := percentile(ms(5, 1, 3), 50); got != 3*time.Millisecond {
		t.Errorf("p50 of 1,3,5 = %v", got)
	}
	if got := percentile(ms(4, 1, 3, 2), 50); got != 2*time.Millisecond {
		t.Errorf("p50 of 1..4 = %v", got)
	}
	if got := percentile(ms(4, 1, 3, 2), 100); got != 4*time.Millisecond {
		t.Errorf("p100 of 1..4 = %v", got)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// TestLiveViewCountsQueuedItems: items not started yet show as queued, so
// that done, running, waiting and queued add up to the total.
func TestLiveViewCountsQueuedItems(t *testing.T) {
	v := newLiveView(io.Discard, 120, false, fixedClock(at(10)), 0)
	evs := []runner.Event{{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"fetch"}, Items: map[string]int{"fetch": 500}}}
	for i := 0; i < 181; i++ { // 149 done, 20 running, 12 waiting
		evs = append(evs, runner.Event{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "fetch", Index: idx(i)})
		switch {
		case i < 169:
			evs = append(evs, runner.Event{Event: runner.EventAcquired, TS: at(1), Step: 1, Node: "fetch", Index: idx(i)})
		default:
			evs = append(evs, runner.Event{Event: runner.EventWait, TS: at(1), Step: 1, Node: "fetch", Index: idx(i), Waiting: "node"})
		}
		if i < 149 {
			evs = append(evs, runner.Event{Event: runner.EventNodeEnd, TS: at(2), Step: 1, Node: "fetch", Index: idx(i), Attempt: 1})
		}
	}
	feed(v, evs)
	got := screen(v, at(10))
	if !strings.Contains(got, "149/500 · 20 running · 12 waiting · 319 queued") {
		t.Errorf("want 149/500 · 20 running · 12 waiting · 319 queued:\n%s", got)
	}
	// A later step of the same node counts afresh.
	v = newLiveView(io.Discard, 120, false, fixedClock(at(10)), 0)
	feed(v, []runner.Event{
		{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"fetch"}, Items: map[string]int{"fetch": 1}},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "fetch", Index: idx(0)},
		{Event: runner.EventNodeEnd, TS: at(1), Step: 1, Node: "fetch", Index: idx(0), Attempt: 1},
		{Event: runner.EventStepStart, TS: at(3), Step: 2, Nodes: []string{"fetch"}, Items: map[string]int{"fetch": 3}},
		{Event: runner.EventNodeStart, TS: at(3), Step: 2, Node: "fetch", Index: idx(0)},
	})
	if got := screen(v, at(10)); !strings.Contains(got, "0/3 · 1 running · 2 queued") {
		t.Errorf("want 0/3 · 1 running · 2 queued in step 2:\n%s", got)
	}
}

// A node whose runs were cancelled is not shown as succeeded, and items
// cancelled before their first attempt are no runs.
func TestViewsShowCancelledNodes(t *testing.T) {
	evs := []runner.Event{
		{Event: runner.EventRunStart, TS: at(0), Workflow: "w"},
		{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"fetch", "slow"}, Items: map[string]int{"fetch": 4}},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "slow"},
		{Event: runner.EventAcquired, TS: at(0), Step: 1, Node: "slow"},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "fetch", Index: idx(0)},
		{Event: runner.EventAcquired, TS: at(0), Step: 1, Node: "fetch", Index: idx(0)},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "fetch", Index: idx(1)},
		{Event: runner.EventWait, TS: at(0), Step: 1, Node: "fetch", Index: idx(1), Waiting: "node"},
		{Event: runner.EventNodeError, TS: at(50), Step: 1, Node: "fetch", Index: idx(0), Attempt: 1, Kind: "status", Error: "404"},
		{Event: runner.EventNodeError, TS: at(51), Step: 1, Node: "fetch", Index: idx(1), Kind: "cancelled", Error: "context canceled"},
		{Event: runner.EventNodeError, TS: at(52), Step: 1, Node: "slow", Attempt: 1, Kind: "cancelled", Error: "context canceled"},
		{Event: runner.EventRunEnd, TS: at(60), Status: "failed"},
	}
	var buf bytes.Buffer
	v := newLiveView(&buf, 120, false, fixedClock(at(100)), 0)
	feed(v, evs)
	got := screen(v, at(100))
	for _, w := range []string{"✗ fetch  1 runs · p50 50ms · max 50ms · 1 failed · 1 cancelled", "– slow  52ms · 1 cancelled"} {
		if !strings.Contains(got, w) {
			t.Errorf("screen lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "✓") {
		t.Errorf("a cancelled node shows ✓:\n%s", got)
	}
	v.Close()
	out := ansi.Strip(buf.String())
	// NODE RUNS FAILED CANCELLED RETRIES P50 MAX
	if !regexpMatch(`│\s*fetch\s*│\s*1\s*│\s*1\s*│\s*1\s*│\s*0\s*│\s*50ms\s*│\s*50ms\s*│`, out) ||
		!regexpMatch(`│\s*slow\s*│\s*1\s*│\s*0\s*│\s*1\s*│`, out) {
		t.Errorf("summary should count 1 fetch run (the cancelled waiter is none) and 1 cancelled each:\n%s", out)
	}
}
