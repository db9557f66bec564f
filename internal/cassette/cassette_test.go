package cassette_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/nodes"
)

const secret = "sk-live-0123456789abcdef"

// server answers /count with a growing counter (so two GETs of one URL
// differ), /echo with the request body, /sse with an event stream, and
// sends headers that must not reach a cassette.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Set-Cookie", "session="+secret)
		w.Header().Set("X-Api-Key-Echo", secret)
		switch r.URL.Path {
		case "/count":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "n="+string(rune('0'+n.Load())))
		case "/echo":
			w.Header().Set("Content-Type", "application/json")
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			// A model repeating the secret streams it in pieces.
			io.WriteString(w, "data: {\"t\":\"he\"}\n\ndata: {\"t\":\"llo sk-live-0123\"}\n\ndata: {\"t\":\"456789abcdef!\"}\n\ndata: [DONE]\n\n")
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func do(t *testing.T, c *http.Client, method, url, body string) (string, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Get("Content-Type") + " " + string(b), nil
}

func TestRecordThenReplayOffline(t *testing.T) {
	srv, hits := server(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	calls := []struct{ method, path, body string }{
		{"GET", "/count", ""},
		{"GET", "/count", ""},
		{"POST", "/echo", `{"prompt": "hi", "key": "` + secret + `"}`},
		{"GET", "/sse?k=" + secret, ""},
	}

	rec, err := cassette.Open(path, cassette.Record, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	client := rec.Wrap(&http.Client{})
	var recorded []string
	for _, c := range calls {
		got, err := do(t, client, c.method, srv.URL+c.path, c.body)
		if err != nil {
			t.Fatal(err)
		}
		recorded = append(recorded, got)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{secret, "sk-live-0123", "456789abcdef", "Authorization", "Set-Cookie", "X-Api-Key", "Date", "duration: 1", "remote_addr"} {
		if strings.Contains(string(file), banned) {
			t.Errorf("cassette contains %q:\n%s", banned, file)
		}
	}
	if !strings.Contains(string(file), "data: [DONE]") {
		t.Errorf("stream body not stored as text:\n%s", file)
	}

	srv.Close()
	before := hits.Load()
	play, err := cassette.Open(path, cassette.Replay, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	client = play.Wrap(&http.Client{})
	for i, c := range calls {
		body := c.body
		if c.method == "POST" {
			// Same JSON value, other key order and spacing.
			body = `{"key":"` + secret + `","prompt":"hi"}`
		}
		got, err := do(t, client, c.method, srv.URL+c.path, body)
		if err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if got != recorded[i] {
			t.Errorf("replay %d = %q, recorded %q", i, got, recorded[i])
		}
	}
	if hits.Load() != before {
		t.Errorf("replay sent %d requests", hits.Load()-before)
	}

	// Each recording is used once: a third GET /count has none.
	_, err = do(t, client, "GET", srv.URL+"/count", "")
	if nodes.KindOf(err) != nodes.KindCassette || !errors.Is(err, cassette.ErrNoRecording) {
		t.Fatalf("third GET: kind %q, err %v", nodes.KindOf(err), err)
	}
	if !strings.Contains(err.Error(), "already used") {
		t.Errorf("error does not say the recording was used: %v", err)
	}
}

func TestReplayMissNamesTheDifference(t *testing.T) {
	srv, _ := server(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	rec, err := cassette.Open(path, cassette.Record, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := do(t, rec.Wrap(http.DefaultClient), "POST", srv.URL+"/echo", `{"messages":[{"role":"user","content":"Say hi to Ada"}]}`); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body, want string
	}{
		{"changed prompt", "POST", "/echo", `{"messages":[{"role":"user","content":"Say hi to Bob"}]}`,
			`body: $.messages[0].content: recorded "Say hi to Ada", got "Say hi to Bob"`},
		{"other url", "POST", "/other", `{"messages":[{"role":"user","content":"Say hi to Ada"}]}`,
			"url: recorded " + srv.URL + "/echo, got " + srv.URL + "/other"},
		{"other method", "PUT", "/echo", `{"messages":[{"role":"user","content":"Say hi to Ada"}]}`,
			"method: recorded POST, got PUT"},
		{"text body", "POST", "/echo", "plain\ntext", `body: line 1: recorded "{\"messages\"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			play, err := cassette.Open(path, cassette.Replay, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = do(t, play.Wrap(http.DefaultClient), tt.method, srv.URL+tt.path, tt.body)
			if nodes.KindOf(err) != nodes.KindCassette {
				t.Fatalf("kind %q: %v", nodes.KindOf(err), err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s", err, tt.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := cassette.Open(filepath.Join(t.TempDir(), "c.json"), cassette.Record, nil); err == nil || !strings.Contains(err.Error(), ".yaml") {
		t.Errorf("non-.yaml name: %v", err)
	}
	if _, err := cassette.Open(filepath.Join(t.TempDir(), "none.yaml"), cassette.Replay, nil); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing file: %v", err)
	}
}

// A cassette's content replays from memory as its file does (a worker
// replays what its run's client read): the same answers, the same miss
// naming the file the client read, and nothing read from disk.
func TestReplayDataAnswersAsTheFile(t *testing.T) {
	srv, hits := server(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	rec, err := cassette.Open(path, cassette.Record, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	want, err := do(t, rec.Wrap(&http.Client{}), "POST", srv.URL+"/echo", `{"prompt": "hi", "key": "`+secret+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	before := hits.Load()
	// The worker's key differs from the recording's: matched redacted.
	play, err := cassette.ReplayData("flows/c.yaml", data, []string{"other-key"})
	if err != nil {
		t.Fatal(err)
	}
	client := play.Wrap(&http.Client{})
	got, err := do(t, client, "POST", srv.URL+"/echo", `{"prompt": "hi", "key": "other-key"}`)
	if err != nil || got != want {
		t.Fatalf("replayed %q, %v; recorded %q", got, err, want)
	}
	_, err = do(t, client, "POST", srv.URL+"/echo", `{"prompt": "bye", "key": "other-key"}`)
	if nodes.KindOf(err) != nodes.KindCassette || !strings.Contains(err.Error(), "no recording in cassette flows/c.yaml; nearest is recording 0") {
		t.Errorf("miss: kind %q, %v", nodes.KindOf(err), err)
	}
	if hits.Load() != before {
		t.Errorf("replay sent %d requests", hits.Load()-before)
	}
	if _, err := cassette.ReplayData("c.yaml", []byte("interactions: [unclosed"), nil); err == nil || !strings.Contains(err.Error(), "cassette c.yaml") {
		t.Errorf("bad content: %v", err)
	}
}
