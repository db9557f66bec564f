package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
)

// outputFlags are the flags `run` and `resume` share (SPEC §8: resume takes
// the same output flags as run).
type outputFlags struct {
	output string // text | json
	stream string // "" | updates | values | events
	// outputSet records that -o was given explicitly: with --stream, the
	// final result is printed only when asked for.
	outputSet bool
}

func (o *outputFlags) check() error {
	switch o.output {
	case "text", "json":
	default:
		return usageErrf("-o must be text or json, not %q", o.output)
	}
	switch o.stream {
	case "", "updates", "values", "events":
	default:
		return usageErrf("--stream must be updates, values or events, not %q", o.stream)
	}
	return nil
}

// outputKeys are the keys `lgx run` prints: the workflow's `output:` list,
// or every state key in declaration order.
func outputKeys(wf *spec.Workflow) []string {
	if wf.Output != nil {
		keys := make([]string, len(wf.Output))
		for i, n := range wf.Output {
			keys[i] = n.Value
		}
		return keys
	}
	keys := make([]string, len(wf.State))
	for i, k := range wf.State {
		keys[i] = k.Name
	}
	return keys
}

// printResult writes the output keys of a finished run to w.
func printResult(w io.Writer, format string, keys []string, state map[string]any) error {
	if format == "json" {
		var b strings.Builder
		b.WriteString("{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			kj, _ := marshalJSON(k, "", "")
			vj, err := marshalJSON(state[k], "  ", "  ")
			if err != nil {
				return fmt.Errorf("output %s: %w", k, err)
			}
			fmt.Fprintf(&b, "\n  %s: %s", kj, vj)
		}
		if len(keys) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("}\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(keys) == 1 {
		return writeText(w, state[keys[0]], "")
	}
	for _, k := range keys {
		fmt.Fprintf(w, "%s:", k)
		v := state[k]
		if s, ok := v.(string); ok && !strings.Contains(s, "\n") {
			fmt.Fprintf(w, " %s\n", s)
			continue
		}
		io.WriteString(w, "\n")
		if err := writeText(w, v, "  "); err != nil {
			return err
		}
	}
	return nil
}

// writeText prints a value for people: strings as they are, anything else
// as indented JSON.
func writeText(w io.Writer, v any, indent string) error {
	var text string
	if s, ok := v.(string); ok {
		text = s
	} else {
		b, err := marshalJSON(v, "", "  ")
		if err != nil {
			return err
		}
		text = string(b)
	}
	text = strings.TrimSuffix(text, "\n")
	if indent != "" {
		text = indent + strings.ReplaceAll(text, "\n", "\n"+indent)
	}
	_, err := fmt.Fprintln(w, text)
	return err
}

// marshalJSON is json.MarshalIndent without HTML escaping: people and
// tools read lgx's output, and "a < b" must not come out as "a \u003c b".
func marshalJSON(v any, prefix, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// streamSink writes `--stream` JSON lines to stdout. Lines are written whole
// under a lock, so concurrent events never interleave.
type streamSink struct {
	mode string
	mu   sync.Mutex
	enc  *json.Encoder
	w    io.Writer
	buf  bytes.Buffer // one events line, under mu
}

func newStreamSink(w io.Writer, mode string) *streamSink {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &streamSink{mode: mode, enc: enc, w: w}
}

// updateLine is one `--stream updates` line: what one invocation wrote.
type updateLine struct {
	Step   int            `json:"step"`
	Node   string         `json:"node"`
	Index  *int           `json:"index,omitempty"`
	Writes map[string]any `json:"writes"`
}

// valuesLine is one `--stream values` line: the state after a step.
type valuesLine struct {
	Step  int            `json:"step"`
	State map[string]any `json:"state"`
}

func (s *streamSink) Emit(e runner.Event) {
	var line any
	switch s.mode {
	case "events":
		line = e
		if e.DurationMS == 0 && timedEvent(e.Event) {
			// DurationMS is omitempty for the events that have no
			// duration; these have one, and 0 ms is a value.
			line = struct {
				runner.Event
				DurationMS int64 `json:"duration_ms"`
			}{Event: e}
		}
	case "updates":
		if e.Event != runner.EventNodeEnd {
			return
		}
		w := e.Writes
		if w == nil {
			w = map[string]any{}
		}
		line = updateLine{Step: e.Step, Node: e.Node, Index: e.Index, Writes: w}
	case "values":
		if e.Event != runner.EventStepEnd || e.State == nil {
			return
		}
		line = valuesLine{Step: e.Step, State: e.State}
	default:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == "events" {
		s.writeEvent(line, e.TS)
		return
	}
	_ = s.enc.Encode(line)
}

// tsLayout is RFC 3339 with all nine digits of nanoseconds. encoding/json
// writes a time as RFC3339Nano, which drops trailing zeros (".7640385Z"):
// a consumer matching "RFC 3339 with nanoseconds" (SPEC §8) by pattern,
// or sorting the lines as text, needs a fixed width.
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

// writeEvent writes one event line with its ts at a fixed width. Called
// with s.mu held.
func (s *streamSink) writeEvent(line any, ts time.Time) {
	s.buf.Reset()
	enc := json.NewEncoder(&s.buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(line) != nil {
		return
	}
	b := s.buf.Bytes()
	// "ts" is the third field, after event and run, so the first match is it.
	short := []byte(`"ts":"` + ts.Format(time.RFC3339Nano) + `"`)
	if i := bytes.Index(b, short); i >= 0 {
		fixed := `"ts":"` + ts.Format(tsLayout) + `"`
		b = append(b[:i:i], append([]byte(fixed), b[i+len(short):]...)...)
	}
	_, _ = s.w.Write(b)
}

// timedEvent reports whether an event always carries duration_ms.
func timedEvent(name string) bool {
	switch name {
	case runner.EventAcquired, runner.EventAttemptEnd, runner.EventNodeEnd, runner.EventNodeError, runner.EventToolEnd:
		return true
	}
	return false
}

// multiSink sends each event to several sinks in order.
type multiSink []runner.Sink

func (m multiSink) Emit(e runner.Event) {
	for _, s := range m {
		s.Emit(e)
	}
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
