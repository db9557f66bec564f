// Package cassette records a run's outgoing HTTP requests and their
// responses to a YAML file, and answers them from it later without touching
// the network (`lgx run --record/--replay`, `lgx test`). It wraps go-vcr's
// recorder at the transport of the run's one HTTP client, so http_fetch,
// tools and the LLM SDKs are all covered.
//
// A cassette is meant to be committed and reviewed: bodies are text,
// secrets are replaced by `***` before anything is written (and requests
// are matched on that redacted form), credentials headers are never
// written, and nothing that changes between two recordings of the same
// run (dates, durations, addresses) is kept.
package cassette

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/dnaeon/go-vcr.v4/pkg/cassette"
	"gopkg.in/dnaeon/go-vcr.v4/pkg/recorder"

	"github.com/lgx-run/lgx/internal/redact"
	"github.com/lgx-run/lgx/nodes"
)

// Mode says whether a Cassette records or replays.
type Mode int

// Modes.
const (
	// Record sends every request and writes it, with its response, to the
	// file (replacing it) when the Cassette is closed.
	Record Mode = iota
	// Replay answers every request from the file and sends nothing.
	Replay
)

// ErrNoRecording is wrapped by the error of a replayed request that has no
// unused recording; it is carried by a *nodes.Error of kind cassette.
var ErrNoRecording = errors.New("no recording")

// Cassette is one open cassette file.
type Cassette struct {
	path string
	mode Mode
	rec  *recorder.Recorder
	red  *redact.Redactor
	// recorded is the file's content (Replay only), to find the nearest
	// request when none matches.
	recorded []*cassette.Interaction
}

// Open opens the cassette at path (which must end in .yaml) for mode.
// secrets are the values to replace by `***` in URLs, bodies and headers.
func Open(path string, mode Mode, secrets []string) (*Cassette, error) {
	if mode == Record {
		if _, ok := strings.CutSuffix(path, ".yaml"); ok {
			if err := writable(path); err != nil {
				return nil, fmt.Errorf("cassette %s: %w", path, err)
			}
		}
	}
	return open(path, mode, secrets, cassette.NewDiskFS())
}

// ReplayData opens for replay a cassette whose content is data, read from the
// file path elsewhere (a worker replays the file its run's client read):
// it matches and fails as Open(path, Replay, secrets) would, naming path.
func ReplayData(path string, data []byte, secrets []string) (*Cassette, error) {
	return open(path, Replay, secrets, memFS{file: path, data: data})
}

// memFS is a cassette file held in memory, for the recorder to load.
type memFS struct {
	file string
	data []byte
}

func (m memFS) ReadFile(name string) ([]byte, error) {
	if name != m.file {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return m.data, nil
}

func (m memFS) WriteFile(name string, _ []byte) error {
	return fmt.Errorf("%s: a replayed cassette is not written", name)
}

func (m memFS) IsFileExists(name string) bool { return name == m.file }

func open(path string, mode Mode, secrets []string, files cassette.FS) (*Cassette, error) {
	name, ok := strings.CutSuffix(path, ".yaml")
	if !ok {
		return nil, fmt.Errorf("cassette %s: the file name must end in .yaml", path)
	}
	c := &Cassette{path: path, mode: mode, red: redact.New(secrets...)}
	vmode := recorder.ModeRecordOnly
	if mode == Replay {
		vmode = recorder.ModeReplayOnly
	}
	rec, err := recorder.New(name,
		recorder.WithMode(vmode),
		recorder.WithSkipRequestLatency(true),
		recorder.WithMatcher(c.matches),
		recorder.WithHook(c.clean, recorder.AfterCaptureHook),
		recorder.WithFS(files),
	)
	if err != nil {
		if errors.Is(err, cassette.ErrCassetteNotFound) {
			return nil, fmt.Errorf("cassette %s: file not found (record it with lgx run --record)", path)
		}
		return nil, fmt.Errorf("cassette %s: %w", path, err)
	}
	c.rec = rec
	if mode == Replay {
		loaded, err := cassette.LoadWithFS(name, files)
		if err != nil {
			return nil, fmt.Errorf("cassette %s: %w", path, err)
		}
		c.recorded = loaded.Interactions
	}
	return c, nil
}

// writable checks, before a recording run sends anything, that the file
// can be written when it ends (the recorder writes it only then): its
// directory is made as the recorder would, and a file that did not exist
// is removed again.
func writable(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	err = f.Close()
	if errors.Is(statErr, fs.ErrNotExist) {
		if rmErr := os.Remove(path); err == nil {
			err = rmErr
		}
	}
	return err
}

// Wrap returns a shallow copy of client whose requests go through the
// cassette. The copy shares client's transport (and so its connection
// pool) when recording.
func (c *Cassette) Wrap(client *http.Client) *http.Client {
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	recorder.WithRealTransport(next)(c.rec)
	cc := *client
	cc.Transport = &transport{c: c}
	return &cc
}

// Close writes the recorded requests to the file (Record only).
func (c *Cassette) Close() error {
	if err := c.rec.Stop(); err != nil {
		return fmt.Errorf("cassette %s: %w", c.path, err)
	}
	return nil
}

// transport sends requests through the recorder and turns a replay miss
// into a failure of kind cassette that says what differed.
type transport struct{ c *Cassette }

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.c.mode == Replay {
		var err error
		if req, err = t.c.prepare(req); err != nil {
			return nil, &nodes.Error{Kind: nodes.KindCassette, Err: err}
		}
	}
	resp, err := t.c.rec.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	if errors.Is(err, cassette.ErrInteractionNotFound) {
		return nil, &nodes.Error{Kind: nodes.KindCassette, Err: t.c.miss(req)}
	}
	return nil, err
}

// clean makes a captured interaction fit to be written and replayed:
// secrets redacted, credentials and volatile headers dropped, no duration
// or addresses. The recording run receives the cleaned response too, so
// that its final state is the one a replay gives.
func (c *Cassette) clean(i *cassette.Interaction) error {
	q := &i.Request
	q.URL = c.red.String(q.URL)
	q.Body = c.red.String(q.Body)
	q.Host, q.RemoteAddr, q.RequestURI, q.Form = "", "", "", nil
	q.ContentLength = int64(len(q.Body))
	// Request headers are not matched and mostly carry credentials,
	// versions and keys derived per attempt: keep only the content type.
	h := http.Header{}
	if ct := q.Headers.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", c.red.String(ct))
	}
	q.Headers = h

	p := &i.Response
	// A streamed answer that repeats a secret holds it in pieces, one per
	// chunk: JSONFragments finds what String cannot.
	p.Body = c.red.JSONFragments(c.red.String(p.Body))
	p.Duration = 0
	p.Headers = c.responseHeaders(p.Headers)
	p.ContentLength = int64(len(p.Body))
	if p.Headers.Get("Content-Length") != "" {
		p.Headers.Set("Content-Length", strconv.Itoa(len(p.Body)))
	}
	return nil
}

// responseHeaders keeps the headers a node or SDK may read, redacted, and
// drops those that change from one recording to the next or carry
// credentials.
func (c *Cassette) responseHeaders(in http.Header) http.Header {
	out := http.Header{}
	for k, vs := range in {
		k = textproto.CanonicalMIMEHeaderKey(k)
		if volatileHeader(k) {
			continue
		}
		for _, v := range vs {
			out.Add(k, c.red.String(v))
		}
	}
	return out
}

// volatileHeader reports headers never written to a cassette: dates and
// request ids differ on every recording; cookies and anything named like a
// credential may be one.
func volatileHeader(k string) bool {
	switch k {
	case "Date", "Set-Cookie", "Age", "Expires", "Last-Modified", "Etag", "Server-Timing",
		"X-Request-Id", "Request-Id", "Cf-Ray", "Openai-Processing-Ms", "X-Envoy-Upstream-Service-Time":
		return true
	}
	l := strings.ToLower(k)
	for _, w := range []string{"auth", "cookie", "key", "token", "secret", "session"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}
