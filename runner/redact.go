package runner

import (
	"strings"
	"sync"

	"github.com/lgx-run/lgx/internal/redact"
)

// redactor is the run's one redactor (internal/redact), used by every
// output path: events, errors, results and the store (SPEC §8, §9.7). The
// zero redactor (no secrets) returns its input unchanged without
// allocating.
type redactor struct {
	r       *redact.Redactor // nil: no secrets
	tokens  *tokenStreams    // nil when r is
	secrets []string         // the values r masks, for a subgraph's run to mask too
}

func newRedactor(secrets []string) redactor {
	rd := redact.New(secrets...)
	if rd == nil {
		return redactor{}
	}
	return redactor{r: rd, tokens: &tokenStreams{m: map[*call]tokenStream{}}, secrets: secrets}
}

// str redacts a string.
func (rd redactor) str(s string) string { return rd.r.String(s) }

// value returns v with secrets replaced in every string it holds, object
// keys included; v itself is never modified.
func (rd redactor) value(v any) any { return rd.r.Value(v) }

// err returns err with its message redacted, still unwrapping to err.
func (rd redactor) err(err error) error { return rd.r.Error(err) }

// tokenStreams holds back, per invocation in flight, the streamed text that
// could be the start of a secret split across tokens.
type tokenStreams struct {
	mu sync.Mutex
	m  map[*call]tokenStream
}

// tokenStream is one invocation's stream and its path (taken by the
// invocation's own goroutine: call.pathOf is not safe to call from others).
type tokenStream struct {
	st   *redact.Stream
	path string
}

// redactToken passes a streamed token through c's stream and returns the
// text that can be emitted now ("" while it may be part of a secret).
func (c *call) redactToken(text string) string {
	ts := c.r.red.tokens
	if ts == nil {
		return text
	}
	path := c.pathOf()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s, ok := ts.m[c]
	if !ok {
		s = tokenStream{st: c.r.red.r.NewStream(), path: path}
		ts.m[c] = s
	}
	return s.st.Write(text)
}

// flushTokens emits what c's token stream still holds, and what the
// streams of the tool calls c made hold (their paths extend c's), once c's
// attempts are over: the invocation's tokens joined are then its whole
// output, redacted.
func (c *call) flushTokens() {
	ts := c.r.red.tokens
	if ts == nil {
		return
	}
	type held struct {
		c    *call
		text string
	}
	var out []held
	prefix := c.pathOf() + "/"
	ts.mu.Lock()
	for k, s := range ts.m {
		if k == c || strings.HasPrefix(s.path, prefix) {
			if text := s.st.Flush(); text != "" {
				out = append(out, held{k, text})
			}
			delete(ts.m, k)
		}
	}
	ts.mu.Unlock()
	for _, h := range out {
		if h.c.r.sink != nil {
			h.c.emitToken(h.text)
		}
	}
}
