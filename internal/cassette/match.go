package cassette

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/dnaeon/go-vcr.v4/pkg/cassette"
)

// live is a request as it is matched: method, URL and body after
// redaction, so that a cassette recorded with one key replays with
// another.
type live struct {
	method, url, body string
}

type liveKey struct{}

// prepare reads req's body (leaving it readable again) and attaches the
// redacted form the matcher compares, once per request rather than once per
// recording tried.
func (c *Cassette) prepare(req *http.Request) (*http.Request, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	l := &live{method: req.Method, url: c.red.String(req.URL.String()), body: c.red.String(string(body))}
	return req.WithContext(context.WithValue(req.Context(), liveKey{}, l)), nil
}

func liveOf(req *http.Request) *live {
	l, _ := req.Context().Value(liveKey{}).(*live)
	return l
}

// matches is the recorder's matcher: same method, same URL, same body
// (compared as JSON values when both parse as JSON, so key order and
// spacing do not matter).
func (c *Cassette) matches(req *http.Request, rec cassette.Request) bool {
	l := liveOf(req)
	if l == nil {
		return false
	}
	return l.method == rec.Method && l.url == rec.URL && sameBody(l.body, rec.Body)
}

func sameBody(a, b string) bool {
	if a == b {
		return true
	}
	va, oka := parseJSON(a)
	vb, okb := parseJSON(b)
	return oka && okb && reflect.DeepEqual(va, vb)
}

func parseJSON(s string) (any, bool) {
	s = strings.TrimSpace(s)
	if s == "" || (s[0] != '{' && s[0] != '[') {
		return nil, false
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, false
	}
	return v, true
}

// miss explains why req has no recording: the nearest recorded request
// (same method and URL first, then same URL, then anything), and the
// first thing that differs from it.
func (c *Cassette) miss(req *http.Request) error {
	l := liveOf(req)
	if l == nil {
		return fmt.Errorf("%w for %s %s in cassette %s", ErrNoRecording, req.Method, req.URL.Redacted(), c.path)
	}
	fail := func(detail string) error {
		// The callers (net/http, http_fetch) already name the method and URL.
		return fmt.Errorf("%w in cassette %s%s", ErrNoRecording, c.path, detail)
	}
	if len(c.recorded) == 0 {
		return fail(" (it records no requests)")
	}
	best, bestScore := 0, -1
	for i, r := range c.recorded {
		score := 0
		if r.Request.Method == l.method {
			score += 2
		}
		if r.Request.URL == l.url {
			score += 4
		}
		if sameBody(l.body, r.Request.Body) {
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	r := c.recorded[best].Request
	var diffs []string
	if r.Method != l.method {
		diffs = append(diffs, fmt.Sprintf("  method: recorded %s, got %s", r.Method, l.method))
	}
	if r.URL != l.url {
		diffs = append(diffs, fmt.Sprintf("  url: recorded %s, got %s", r.URL, l.url))
	}
	if !sameBody(l.body, r.Body) {
		diffs = append(diffs, "  body: "+bodyDiff(r.Body, l.body))
	}
	if len(diffs) == 0 {
		return fail(": every recording of this request was already used (the run sends it more often than the recording did)")
	}
	return fail(fmt.Sprintf("; nearest is recording %d:\n%s", c.recorded[best].ID, strings.Join(diffs, "\n")))
}

// bodyDiff names the first difference between a recorded and a live body:
// a JSON path when both are JSON, else the first differing line.
func bodyDiff(recorded, got string) string {
	vr, okr := parseJSON(recorded)
	vg, okg := parseJSON(got)
	if okr && okg {
		return jsonDiff("$", vr, vg)
	}
	rl, gl := strings.Split(recorded, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(rl), len(gl)); i++ {
		var a, b string
		if i < len(rl) {
			a = rl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			return fmt.Sprintf("line %d: recorded %s, got %s", i+1, quote(a), quote(b))
		}
	}
	return "differs"
}

// jsonDiff returns the first path where two JSON values differ, with both
// values.
func jsonDiff(path string, a, b any) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			va, oka := x[k]
			vb, okb := y[k]
			switch {
			case !oka:
				return fmt.Sprintf("%s.%s: not recorded, got %s", path, k, short(vb))
			case !okb:
				return fmt.Sprintf("%s.%s: recorded %s, missing", path, k, short(va))
			case !reflect.DeepEqual(va, vb):
				return jsonDiff(path+"."+k, va, vb)
			}
		}
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		for i := range min(len(x), len(y)) {
			if !reflect.DeepEqual(x[i], y[i]) {
				return jsonDiff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i])
			}
		}
		if len(x) != len(y) {
			return fmt.Sprintf("%s: recorded %d items, got %d", path, len(x), len(y))
		}
	}
	return fmt.Sprintf("%s: recorded %s, got %s", path, short(a), short(b))
}

// short renders a JSON value for a one-line diff, cut at 120 bytes.
func short(v any) string {
	b, _ := json.Marshal(v)
	return quoteCut(string(b))
}

func quote(s string) string { return quoteCut(fmt.Sprintf("%q", s)) }

func quoteCut(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
