// Package llmtest is a scriptable, protocol-faithful fake of the OpenAI Chat
// Completions and Anthropic Messages APIs on a loopback HTTP server. Tests
// (and testscript commands) enqueue replies — text, parallel tool calls,
// usage, finish reasons, HTTP errors, streams cut mid-way — and then inspect
// the requests the server received.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Reply is one scripted response. The zero Reply is an empty assistant
// message that stops normally.
type Reply struct {
	// Text is the assistant text. When streamed it is sent in Chunks if
	// given, else split into pieces of a few characters.
	Text   string
	Chunks []string
	// ToolCalls are requested in this order (parallel tool calls when more
	// than one).
	ToolCalls []ToolCall
	// FinishReason overrides the provider's stop value (OpenAI
	// finish_reason, Anthropic stop_reason). By default: "stop" /
	// "end_turn", or "tool_calls" / "tool_use" when ToolCalls is set.
	FinishReason string
	// Usage is reported when set (OpenAI: only when the request asked for
	// it with stream_options.include_usage, or for non-streaming replies).
	Usage *Usage
	// Model overrides the echoed model name.
	Model string

	// Status, when not 0 or 200, makes the reply an HTTP error in the
	// provider's error shape; ErrorMessage is its message.
	Status       int
	ErrorMessage string
	// RetryAfter is sent as the Retry-After header when not empty.
	RetryAfter string

	// StreamError, when set on a streamed reply, ends the stream after the
	// text with an in-stream error of this type instead of finishing
	// (Anthropic: an `event: error`, e.g. "overloaded_error"; OpenAI: a
	// `data: {"error": …}` line, e.g. "server_error").
	StreamError string

	// CutAfter > 0 aborts the connection after that many SSE events (a
	// stream cut mid-way; the client sees an unexpected EOF).
	CutAfter int
	// Delay is slept before each SSE event (and before a non-streaming body).
	Delay time.Duration
	// OnChunk, when set, is called just before text chunk i is written
	// (after Delay).
	OnChunk func(i int)
}

// ToolCall is a tool call the model asks for.
type ToolCall struct {
	ID   string // generated when empty
	Name string
	// Arguments is the raw JSON text of the arguments ("{}" when empty).
	Arguments string
}

// Usage is a token count.
type Usage struct {
	InputTokens, OutputTokens int
}

// Request is one request the server received.
type Request struct {
	API    string // "openai" or "anthropic"
	Method string
	Path   string
	Header http.Header
	Raw    []byte
	Body   map[string]any // the parsed JSON body; nil when it was not JSON
	Stream bool
}

// Messages returns the request's messages array.
func (r Request) Messages() []map[string]any {
	raw, _ := r.Body["messages"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, m := range raw {
		if mm, ok := m.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}

// LastIsToolResult reports whether the request's last message carries tool
// results: an OpenAI `tool` message or an Anthropic user message with a
// tool_result block. Agent-loop responders use it to decide between asking
// for tools and answering.
func (r Request) LastIsToolResult() bool {
	msgs := r.Messages()
	if len(msgs) == 0 {
		return false
	}
	last := msgs[len(msgs)-1]
	if last["role"] == "tool" {
		return true
	}
	blocks, _ := last["content"].([]any)
	for _, b := range blocks {
		if bm, ok := b.(map[string]any); ok && bm["type"] == "tool_result" {
			return true
		}
	}
	return false
}

// ToolResults returns the contents of the tool results in the request's
// messages, in order, for either API (OpenAI `tool` messages, Anthropic
// tool_result blocks; block contents are joined text).
func (r Request) ToolResults() []string {
	var out []string
	for _, m := range r.Messages() {
		if m["role"] == "tool" {
			out = append(out, fmt.Sprint(m["content"]))
			continue
		}
		blocks, _ := m["content"].([]any)
		for _, b := range blocks {
			bm, ok := b.(map[string]any)
			if !ok || bm["type"] != "tool_result" {
				continue
			}
			switch c := bm["content"].(type) {
			case string:
				out = append(out, c)
			case []any:
				var sb strings.Builder
				for _, x := range c {
					if xm, ok := x.(map[string]any); ok {
						if t, ok := xm["text"].(string); ok {
							sb.WriteString(t)
						}
					}
				}
				out = append(out, sb.String())
			default:
				out = append(out, "")
			}
		}
	}
	return out
}

// Script is the initial behaviour of a server: Replies are served in order;
// when they run out, Respond (if set) chooses a reply from the request.
type Script struct {
	Replies []Reply
	Respond func(Request) Reply
}

// Server is a running fake. It is safe for concurrent use.
type Server struct {
	hs *httptest.Server

	mu        sync.Mutex
	queue     []Reply
	respond   func(Request) Reply
	requests  []Request
	inFlight  int
	maxFlight int
	seq       int
}

// New starts a server for a test and closes it when the test ends.
func New(tb testing.TB, replies ...Reply) *Server {
	tb.Helper()
	s, err := Start(Script{Replies: replies})
	if err != nil {
		tb.Fatalf("llmtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a server on 127.0.0.1 outside of a test (e.g. from a
// testscript command). Call Close when done.
func Start(script Script) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("llmtest: listen: %w", err)
	}
	s := &Server{queue: append([]Reply(nil), script.Replies...), respond: script.Respond}
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.hs.Listener.Close()
	s.hs.Listener = l
	s.hs.Start()
	return s, nil
}

// Close shuts the server down, closing open connections.
func (s *Server) Close() {
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// URL is the server root, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.hs.URL }

// OpenAIURL is the base URL an OpenAI SDK expects (ends in /v1).
func (s *Server) OpenAIURL() string { return s.hs.URL + "/v1" }

// AnthropicURL is the base URL the Anthropic SDK expects (the SDK appends
// /v1/messages).
func (s *Server) AnthropicURL() string { return s.hs.URL }

// Enqueue appends replies to the queue.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// SetResponder sets the function that chooses a reply once the queue is
// empty (nil: answer 500 "no reply scripted").
func (s *Server) SetResponder(f func(Request) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// Requests returns the requests received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// MaxInFlight is the largest number of requests the server was handling at
// one instant.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxFlight
}

// AgentResponder returns a responder for agent-loop tests: when the last
// message carries tool results it answers with final; otherwise it asks for
// calls.
func AgentResponder(calls []ToolCall, final string) func(Request) Reply {
	return func(r Request) Reply {
		if r.LastIsToolResult() {
			return Reply{Text: final}
		}
		return Reply{ToolCalls: calls}
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	var api string
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		api = "openai"
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v1/messages"):
		api = "anthropic"
	default:
		http.Error(w, "llmtest: no such endpoint "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "llmtest: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{API: api, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Raw: raw}
	if json.Unmarshal(raw, &req.Body) == nil {
		req.Stream, _ = req.Body["stream"].(bool)
	}

	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.seq++
	seq := s.seq
	var reply Reply
	var ok bool
	if len(s.queue) > 0 {
		reply, s.queue, ok = s.queue[0], s.queue[1:], true
	}
	respond := s.respond
	s.mu.Unlock()
	if !ok {
		if respond == nil {
			reply = Reply{Status: http.StatusInternalServerError, ErrorMessage: "llmtest: no reply scripted"}
		} else {
			reply = respond(req)
		}
	}
	if req.Body == nil && reply.Status == 0 {
		reply = Reply{Status: http.StatusBadRequest, ErrorMessage: "llmtest: request body is not JSON"}
	}

	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		writeError(w, api, reply)
		return
	}
	model := reply.Model
	if model == "" {
		model, _ = req.Body["model"].(string)
	}
	e := &emitter{w: w, r: r, reply: reply}
	if api == "openai" {
		includeUsage := false
		if so, ok := req.Body["stream_options"].(map[string]any); ok {
			includeUsage, _ = so["include_usage"].(bool)
		}
		if req.Stream {
			e.openAIStream(seq, model, includeUsage)
		} else {
			e.openAIJSON(seq, model)
		}
		return
	}
	if req.Stream {
		e.anthropicStream(seq, model)
	} else {
		e.anthropicJSON(seq, model)
	}
}

func writeError(w http.ResponseWriter, api string, reply Reply) {
	msg := reply.ErrorMessage
	if msg == "" {
		msg = http.StatusText(reply.Status)
	}
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d", reply.Status) // e.g. Anthropic's 529 Overloaded
	}
	var body any
	if api == "openai" {
		typ := "invalid_request_error"
		switch {
		case reply.Status == 401:
			typ = "authentication_error"
		case reply.Status == 429:
			typ = "rate_limit_exceeded"
		case reply.Status >= 500:
			typ = "server_error"
		}
		body = map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}}
	} else {
		typ := "invalid_request_error"
		switch {
		case reply.Status == 401:
			typ = "authentication_error"
		case reply.Status == 429:
			typ = "rate_limit_error"
		case reply.Status == 529:
			typ = "overloaded_error"
		case reply.Status >= 500:
			typ = "api_error"
		}
		body = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}}
		w.Header().Set("request-id", "req_llmtest")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(reply.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// emitter writes one successful response.
type emitter struct {
	w      http.ResponseWriter
	r      *http.Request
	reply  Reply
	events int
}

// wait sleeps the reply's delay; it reports false when the client left.
func (e *emitter) wait() bool {
	if e.reply.Delay <= 0 {
		return e.r.Context().Err() == nil
	}
	t := time.NewTimer(e.reply.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.r.Context().Done():
		return false
	}
}

// startSSE writes the headers of an event stream.
func (e *emitter) startSSE() {
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	e.w.WriteHeader(http.StatusOK)
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

// send writes one SSE event (event: line only when name is not empty) and
// flushes it. It aborts the connection when the reply's CutAfter is reached.
func (e *emitter) send(name string, data any) bool {
	return e.sendText(-1, name, data)
}

// sendText is send for text chunk i (i < 0: not a text chunk): OnChunk
// runs after the delay, just before the write.
func (e *emitter) sendText(i int, name string, data any) bool {
	if !e.wait() {
		return false
	}
	if i >= 0 && e.reply.OnChunk != nil {
		e.reply.OnChunk(i)
	}
	if e.reply.CutAfter > 0 && e.events >= e.reply.CutAfter {
		// Abort the response: the server closes the connection without
		// finishing the chunked body.
		panic(http.ErrAbortHandler)
	}
	e.events++
	var b []byte
	if s, ok := data.(string); ok {
		b = []byte(s)
	} else {
		b, _ = json.Marshal(data)
	}
	var buf strings.Builder
	if name != "" {
		buf.WriteString("event: ")
		buf.WriteString(name)
		buf.WriteByte('\n')
	}
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	if _, err := io.WriteString(e.w, buf.String()); err != nil {
		return false
	}
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
	return true
}

// chunks returns the text pieces to stream.
func (e *emitter) chunks() []string {
	if len(e.reply.Chunks) > 0 {
		return e.reply.Chunks
	}
	return splitText(e.reply.Text, 4)
}

// splitText cuts s into pieces of about n runes.
func splitText(s string, n int) []string {
	if s == "" {
		return nil
	}
	var out []string
	r := []rune(s)
	for len(r) > n {
		out = append(out, string(r[:n]))
		r = r[n:]
	}
	return append(out, string(r))
}

// splitArgs cuts a tool call's argument JSON into fragments the way the
// APIs stream them.
func splitArgs(s string) []string {
	if s == "" {
		s = "{}"
	}
	return splitText(s, 7)
}

func (e *emitter) text() string {
	if len(e.reply.Chunks) > 0 {
		return strings.Join(e.reply.Chunks, "")
	}
	return e.reply.Text
}

func (e *emitter) writeJSON(v any) {
	if !e.wait() {
		return
	}
	e.w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(v)
	if e.reply.CutAfter > 0 {
		// Promise the whole body, deliver half of it, and drop the connection.
		e.w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		e.w.WriteHeader(http.StatusOK)
		_, _ = e.w.Write(b[:len(b)/2])
		panic(http.ErrAbortHandler)
	}
	_, _ = e.w.Write(b)
}
