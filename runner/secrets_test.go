package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// streamer is a test-only node type that streams `text` as token events,
// cut after each of the byte counts in `cuts` (cycling), and returns it.
type streamer struct{}

func init() { nodes.Register(streamer{}) }

func (streamer) Name() string { return "test_streamer" }

func (streamer) Doc() nodes.Doc {
	return nodes.Doc{Summary: "test token streamer", With: []nodes.Field{
		{Name: "text", Type: "string"},
		{Name: "cuts", Type: "list"},
	}}
}

func (streamer) Run(ctx context.Context, inv *nodes.Invocation) (any, error) {
	text, _ := inv.With["text"].(string)
	cuts, _ := inv.With["cuts"].([]any)
	rest := text
	for i := 0; rest != ""; i++ {
		n := len(rest)
		if len(cuts) > 0 {
			n = min(max(cuts[i%len(cuts)].(int), 1), len(rest))
		}
		inv.Host.Token(rest[:n])
		rest = rest[n:]
	}
	return text, nil
}

// secretForms are the ways a secret may leave the process, computed with
// the standard library.
func secretForms(s string) map[string]string {
	j, _ := json.Marshal(s)
	return map[string]string{
		"raw":          s,
		"query":        url.QueryEscape(s),
		"path":         url.PathEscape(s),
		"json":         string(j[1 : len(j)-1]),
		"base64":       base64.StdEncoding.EncodeToString([]byte(s)),
		"base64url":    base64.RawURLEncoding.EncodeToString([]byte(s)),
		"query base64": url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(s))),
	}
}

func assertNoSecret(t *testing.T, where string, data []byte, secret string) {
	t.Helper()
	for name, f := range secretForms(secret) {
		if bytes.Contains(data, []byte(f)) {
			i := bytes.Index(data, []byte(f))
			t.Errorf("%s: %s form %q of the secret found: …%s…", where, name, f, data[max(0, i-60):min(len(data), i+len(f)+60)])
		}
	}
}

// echoServer answers /echo with a JSON body repeating the request URL and
// its token (Go escapes & as \u0026), the token as an object key and in
// a Basic credential; /fail with a 500 whose body does the same.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("token")
		body, _ := json.Marshal(map[string]any{"url": r.URL.String(), "token": tok, "keyed": map[string]any{tok: 1},
			"basic": base64.StdEncoding.EncodeToString([]byte("user:" + tok))})
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSecretsNeverLeakEncoded: a secret used as an object key, sent in a
// query (so URL-encoded in result.url), echoed JSON-escaped and base64'd
// by a server, streamed across token boundaries and quoted in a failing
// server's error body appears in none of its forms in the result, the
// error, the events or the SQLite file.
func TestSecretsNeverLeakEncoded(t *testing.T) {
	const secret = "p@ss&w/rd+1<x>"
	srv := echoServer(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "lgx.db")
	st, err := store.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	g := compileYAML(t, `
lgx: 1
name: leaks
secrets: [T]
state:
  obj: {type: object}
  url: {type: string}
  echo: {type: any}
  said: {type: string}
nodes:
  keyed: {type: set, output: {obj: {"k": "${{ secrets.T }}"}}}
  fetch:
    type: http_fetch
    with: {url: "${{ env.SRV }}/echo", query: {token: "${{ secrets.T }}"}}
    output: {url: "${{ result.url }}", echo: "${{ result.json }}", said: "${{ result.body }}"}
  talk:
    type: test_streamer
    with: {text: "the key is ${{ secrets.T }}, keep it", cuts: [3, 1, 2]}
    output: {said: "${{ result }}"}
  fail:
    type: http_fetch
    with: {url: "${{ env.SRV }}/fail", query: {token: "${{ secrets.T }}"}}
edges:
  - {from: START, to: keyed}
  - {from: keyed, to: fetch}
  - {from: fetch, to: talk}
  - {from: talk, to: fail}
`)
	rec := &eventLog{}
	res, runErr := Run(context.Background(), g, Options{Store: st, Sink: rec,
		Environ: []string{"T=" + secret, "SRV=" + srv.URL}})
	var ne *NodeError
	if !errors.As(runErr, &ne) || ne.Node != "fail" || ne.Kind != nodes.KindStatus {
		t.Fatalf("want node fail to fail with a status, got %v", runErr)
	}
	// The run did what it should, with the secret masked.
	if got := res.State["obj"]; fmt.Sprint(got) != "map[k:***]" {
		t.Errorf("obj = %v", got)
	}
	// The server's JSON used the secret as an object key.
	if got := res.State["echo"].(map[string]any)["keyed"]; fmt.Sprint(got) != "map[***:1]" {
		t.Errorf("echo.keyed = %v", got)
	}
	if got := res.State["url"].(string); !strings.HasSuffix(got, "/echo?token=***") {
		t.Errorf("url = %q", got)
	}
	if got := res.State["said"]; got != "the key is ***, keep it" {
		t.Errorf("said = %q", got)
	}
	var tokens strings.Builder
	for _, e := range rec.named(EventToken) {
		tokens.WriteString(e.Token)
	}
	if tokens.String() != "the key is ***, keep it" {
		t.Errorf("tokens joined = %q", tokens.String())
	}

	assertNoSecret(t, "error", []byte(runErr.Error()), secret)
	if !strings.Contains(runErr.Error(), `token=***`) || !strings.Contains(runErr.Error(), `"token":"***"`) {
		t.Errorf("error does not show the masked request and body: %v", runErr)
	}
	res.State["error"] = runErr.Error()
	b, _ := json.Marshal(res)
	assertNoSecret(t, "result", b, secret)
	for _, e := range rec.events {
		b, _ := json.Marshal(e)
		assertNoSecret(t, "event "+e.Event, b, secret)
	}
	// What the store gives back (runs show/history) and its bytes on disk.
	ctx := context.Background()
	var stored []byte
	cps, _ := st.Checkpoints(ctx, res.RunID)
	invs, _ := st.Invocations(ctx, res.RunID)
	run, _ := st.GetRun(ctx, res.RunID)
	for _, v := range []any{cps, invs, run} {
		b, _ := json.Marshal(v)
		stored = append(stored, b...)
	}
	if !bytes.Contains(stored, []byte("token=***")) {
		t.Errorf("stored records lack the masked URL: %s", stored)
	}
	assertNoSecret(t, "store records", stored, secret)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(dbPath + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecret(t, filepath.Base(f), b, secret)
	}
}

// TestTokensHeldAcrossChunks: whatever the chunking, token events joined
// equal the redacted text, and no single event carries a secret's start
// that a later one completes.
func TestTokensHeldAcrossChunks(t *testing.T) {
	const secret = "sk-live-0123456789"
	g := compileYAML(t, `
lgx: 1
name: tokens
secrets: [K]
state:
  said: {type: string}
nodes:
  talk:
    type: test_streamer
    for_each: "${{ [1, 2, 3, 5, 7] }}"
    with: {text: "a ${{ secrets.K }} b sk-live-012 c ${{ secrets.K }}${{ secrets.K }}", cuts: ["${{ item }}"]}
edges:
  - {from: START, to: talk}
`)
	rec := &eventLog{}
	if _, err := Run(context.Background(), g, Options{Sink: rec, Environ: []string{"K=" + secret}}); err != nil {
		t.Fatal(err)
	}
	joined := map[int]string{}
	for _, e := range rec.named(EventToken) {
		if strings.Contains(e.Token, "*") && e.Token != "***" && !strings.Contains(e.Token, "***") {
			t.Errorf("partial mask in %q", e.Token)
		}
		joined[*e.Index] += e.Token
	}
	for i := range 5 {
		if want := "a *** b sk-live-012 c ******"; joined[i] != want {
			t.Errorf("item %d: tokens joined %q, want %q", i, joined[i], want)
		}
	}
}

// TestProviderErrorRedacted: a provider expression that fails quotes its
// operands; the secret among them is masked.
func TestProviderErrorRedacted(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: prov
secrets: [KEY]
providers:
  default: {kind: openai, model: m, api_key: "${{ int(secrets.KEY) }}"}
state: {}
nodes:
  a: {type: set}
edges:
  - {from: START, to: a}
`)
	_, err := Run(context.Background(), g, Options{Environ: []string{"KEY=hunter2-secret"}})
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("want an input error, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "provider default") {
		t.Errorf("provider error: %v", err)
	}
}

// TestSubgraphKeepsParentSecrets: a parent's secret handed to a child
// workflow (which declares none) is masked in what the child records, its
// errors and its tokens, as in the parent.
func TestSubgraphKeepsParentSecrets(t *testing.T) {
	const secret = "parent-secret-0042"
	dir := t.TempDir()
	writeWorkflows(t, dir, "", map[string]string{
		"parent.yaml": `
lgx: 1
name: parent
secrets: [T]
state: {out: any}
nodes:
  call: {type: subgraph, with: {workflow: child.yaml, input: {tok: "${{ secrets.T }}"}}, output: {out: "${{ result }}"}}
edges:
  - {from: START, to: call}
`,
		"child.yaml": `
lgx: 1
name: child
state: {tok: string, said: string}
nodes:
  talk: {type: test_streamer, with: {text: "${{ state.tok }}", cuts: [4]}, output: {said: "${{ result }}"}}
  fail: {type: probe, with: {fail: status, status: 400, msg: "${{ ': ' + state.tok }}"}, retry: {attempts: 1}}
edges:
  - {from: START, to: talk}
  - {from: talk, to: fail}
`,
	})
	g, err := LoadGraph(filepath.Join(dir, "parent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	rec := &eventLog{}
	res, runErr := Run(context.Background(), g, Options{Store: st, Sink: rec, Environ: []string{"T=" + secret}})
	if runErr == nil {
		t.Fatal("the child's failing node should fail the run")
	}
	var all []byte
	invs, _ := st.Invocations(context.Background(), res.RunID)
	cps, _ := st.Checkpoints(context.Background(), res.RunID)
	for _, v := range []any{invs, cps, rec.events, res, runErr.Error()} {
		b, _ := json.Marshal(v)
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte(`"said\":\"***\"`)) && !bytes.Contains(all, []byte(`"said":"***"`)) {
		t.Errorf("the child's recorded write is not masked: %s", all)
	}
	assertNoSecret(t, "records, events and error", all, secret)
}

// TestToolCallTokensFlushed: a tool whose node streams tokens has its held
// tail emitted when the calling invocation ends, masked, per tool call.
func TestToolCallTokensFlushed(t *testing.T) {
	const secret = "tool-secret-99"
	g := compileYAML(t, `
lgx: 1
name: t
secrets: [K]
state:
  messages: {type: messages, default: []}
tools:
  speak:
    description: streams its argument
    parameters: {type: object, properties: {s: {type: string}}}
    node: {type: test_streamer, with: {text: "${{ args.s }}", cuts: [5]}}
nodes:
  run_tools:
    type: tools
    with:
      calls:
        - {id: c1, name: speak, arguments: {s: "one ${{ secrets.K }} tool-sec"}}
        - {id: c2, name: speak, arguments: {s: "two ${{ secrets.K }} tool-"}}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: run_tools}
`)
	rec := &eventLog{}
	if _, err := Run(context.Background(), g, Options{Sink: rec, Environ: []string{"K=" + secret}}); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]string{}
	for _, e := range rec.named(EventToken) {
		byPath[e.Path] += e.Token
	}
	if len(byPath) != 2 {
		t.Fatalf("token streams %v, want one per tool call", byPath)
	}
	for p, text := range byPath {
		// The tails could have begun the secret: held, then flushed.
		if text != "one *** tool-sec" && text != "two *** tool-" {
			t.Errorf("%s: tokens joined %q", p, text)
		}
	}
}
