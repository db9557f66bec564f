package cassette

import (
	"fmt"
	"net/http"
	"strings"

	"go.yaml.in/yaml/v4"
	"gopkg.in/dnaeon/go-vcr.v4/pkg/cassette"
	"gopkg.in/dnaeon/go-vcr.v4/pkg/recorder"

	"github.com/lgx-run/lgx/internal/redact"
)

// A run recorded on an engine (`lgx run --record --engine temporal`)
// sends its requests from the workers, which do not share the client's
// file system: each worker captures every interaction as a local
// recording does, cleaned and redacted with the worker's secrets before
// it leaves the request (Stream), and hands it on as one YAML document;
// the client writes the file from the documents once the run ends
// (WriteFile).

// Stream captures the interactions of requests sent through clients it
// wraps, each cleaned as a recorded cassette's.
type Stream struct {
	c *Cassette // the cleaning (secrets) only; never loaded nor written
}

// NewStream returns a Stream that redacts secrets.
func NewStream(secrets []string) *Stream {
	return &Stream{c: &Cassette{mode: Record, red: redact.New(secrets...)}}
}

// Wrap returns a shallow copy of client whose requests are sent and
// whose interactions, cleaned, are passed to report as YAML documents
// (in the order each request's response was read). The response the
// caller receives is the cleaned one, as when recording locally.
func (s *Stream) Wrap(client *http.Client, report func(doc []byte)) *http.Client {
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cc := *client
	cc.Transport = &streamTransport{s: s, next: next, report: report}
	return &cc
}

type streamTransport struct {
	s      *Stream
	next   http.RoundTripper
	report func([]byte)
}

// RoundTrip records req with a recorder of its own, so that the
// interaction the hook sees is this request's whatever runs concurrently.
func (t *streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var doc []byte
	capture := func(i *cassette.Interaction) error {
		b, err := yaml.Marshal(i)
		if err != nil {
			return fmt.Errorf("cassette: %w", err)
		}
		doc = b
		return nil
	}
	rec, err := recorder.New("stream",
		recorder.WithMode(recorder.ModeRecordOnly),
		recorder.WithSkipRequestLatency(true),
		recorder.WithHook(t.s.c.clean, recorder.AfterCaptureHook),
		recorder.WithHook(capture, recorder.AfterCaptureHook),
		recorder.WithRealTransport(t.next),
		recorder.WithFS(memFS{}),
	)
	if err != nil {
		return nil, fmt.Errorf("cassette: %w", err)
	}
	resp, err := rec.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if doc != nil {
		t.report(doc)
	}
	return resp, nil
}

// WriteFile writes the cassette at path (which must end in .yaml) from
// interactions as Stream reports them, in the order given: the file a
// local recording of the same requests writes.
func WriteFile(path string, docs [][]byte) error {
	name, ok := strings.CutSuffix(path, ".yaml")
	if !ok {
		return fmt.Errorf("cassette %s: the file name must end in .yaml", path)
	}
	c := cassette.New(name)
	c.MarshalFunc = yaml.Marshal // the recorder's default
	for _, d := range docs {
		var i cassette.Interaction
		if err := yaml.Unmarshal(d, &i); err != nil {
			return fmt.Errorf("cassette %s: a recorded interaction: %w", path, err)
		}
		c.AddInteraction(&i)
	}
	if err := c.SaveWithFS(cassette.NewDiskFS()); err != nil {
		return fmt.Errorf("cassette %s: %w", path, err)
	}
	return nil
}

// ParseRequest returns the method, URL and body of an interaction as
// Stream reports it (already redacted), to tell two recordings of one
// request apart from two requests.
func ParseRequest(doc []byte) (method, url, body string, err error) {
	var i cassette.Interaction
	if err := yaml.Unmarshal(doc, &i); err != nil {
		return "", "", "", fmt.Errorf("cassette: a recorded interaction: %w", err)
	}
	return i.Request.Method, i.Request.URL, i.Request.Body, nil
}
