package nodes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// toolsTestHost runs tools from a table of Go functions and tracks how
// many run at once.
type toolsTestHost struct {
	specs map[string]ToolSpec
	funcs map[string]func(ctx context.Context, args map[string]any) (any, error)

	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	ran         []string
}

func (h *toolsTestHost) HTTPClient() *http.Client { return http.DefaultClient }
func (h *toolsTestHost) IdempotencyKey() string   { return "k" }
func (h *toolsTestHost) Token(string)             {}
func (h *toolsTestHost) Provider(string) (*Provider, error) {
	return nil, errors.New("not used")
}
func (h *toolsTestHost) List(names []string) ([]ToolSpec, error) {
	var out []ToolSpec
	for _, n := range names {
		s, ok := h.specs[n]
		if !ok {
			return nil, Errorf(KindInput, "unknown tool %q", n)
		}
		out = append(out, s)
	}
	return out, nil
}
func (h *toolsTestHost) Call(ctx context.Context, c ToolCall) (any, error) {
	name, args := c.Name, c.Args
	h.mu.Lock()
	h.inFlight++
	h.maxInFlight = max(h.maxInFlight, h.inFlight)
	h.ran = append(h.ran, name)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.inFlight--
		h.mu.Unlock()
	}()
	return h.funcs[name](ctx, args)
}

func newToolsHost(t *testing.T) *toolsTestHost {
	opts := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opts) })
	obj := func(props map[string]any, req ...any) map[string]any {
		return map[string]any{"type": "object", "properties": props, "required": req}
	}
	return &toolsTestHost{
		specs: map[string]ToolSpec{
			"echo":  {Name: "echo", Parameters: obj(map[string]any{"text": map[string]any{"type": "string"}}, "text")},
			"add":   {Name: "add", Parameters: obj(map[string]any{"a": map[string]any{"type": "number"}, "b": map[string]any{"type": "number"}}, "a", "b")},
			"sleep": {Name: "sleep", Parameters: obj(map[string]any{"ms": map[string]any{"type": "integer"}}, "ms")},
			"fail":  {Name: "fail"},
			"boom":  {Name: "boom"},
		},
		funcs: map[string]func(context.Context, map[string]any) (any, error){
			"echo": func(_ context.Context, a map[string]any) (any, error) { return a["text"], nil },
			"add": func(_ context.Context, a map[string]any) (any, error) {
				return map[string]any{"sum": a["a"].(float64) + a["b"].(float64)}, nil
			},
			"sleep": func(ctx context.Context, a map[string]any) (any, error) {
				ms, _ := llmNumber(a["ms"])
				select {
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return fmt.Sprintf("slept %vms", a["ms"]), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			},
			"fail": func(context.Context, map[string]any) (any, error) {
				return nil, Errorf(KindStatus, "GET http://svc/: 503 Service Unavailable")
			},
			"boom": func(context.Context, map[string]any) (any, error) { panic("kaboom") },
		},
	}
}

func call(id, name string, args any) map[string]any {
	return map[string]any{"id": id, "name": name, "arguments": args}
}

func runTools(t *testing.T, ctx context.Context, tools ToolSource, with map[string]any) (any, error) {
	t.Helper()
	typ, ok := Lookup("tools")
	if !ok {
		t.Fatal("tools is not registered")
	}
	return typ.Run(ctx, &Invocation{Node: "act", Index: -1, Attempt: 1, With: with, Tools: tools})
}

func toolMessages(t *testing.T, res any) []any {
	t.Helper()
	assertJSONLike(t, res)
	m, ok := res.(map[string]any)
	if !ok {
		t.Fatalf("result is %T", res)
	}
	msgs, ok := m["messages"].([]any)
	if !ok {
		t.Fatalf("messages is %T", m["messages"])
	}
	return msgs
}

func TestToolsResultsInCallOrder(t *testing.T) {
	host := newToolsHost(t)
	res, err := runTools(t, context.Background(), host, map[string]any{"calls": []any{
		call("c1", "sleep", map[string]any{"ms": 60}),
		call("c2", "echo", map[string]any{"text": "hi"}),
		call("c3", "add", `{"a": 1, "b": 2.5}`),
		call("c4", "sleep", map[string]any{"ms": 1}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{
		map[string]any{"role": "tool", "tool_call_id": "c1", "name": "sleep", "content": "slept 60ms"},
		map[string]any{"role": "tool", "tool_call_id": "c2", "name": "echo", "content": "hi"},
		map[string]any{"role": "tool", "tool_call_id": "c3", "name": "add", "content": `{"sum":3.5}`},
		map[string]any{"role": "tool", "tool_call_id": "c4", "name": "sleep", "content": "slept 1ms"},
	}
	if got := toolMessages(t, res); !reflect.DeepEqual(got, want) {
		t.Errorf("messages =\n%#v\nwant\n%#v", got, want)
	}
}

func TestToolsRunInParallel(t *testing.T) {
	host := newToolsHost(t)
	// Each call waits until the other has started: only parallel
	// execution finishes before the deadline.
	var started sync.WaitGroup
	started.Add(2)
	host.funcs["meet"] = func(ctx context.Context, _ map[string]any) (any, error) {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
			return "met", nil
		case <-time.After(3 * time.Second):
			return nil, errors.New("the other call never started")
		}
	}
	host.specs["meet"] = ToolSpec{Name: "meet"}
	res, err := runTools(t, context.Background(), host, map[string]any{"calls": []any{call("a", "meet", nil), call("b", "meet", nil)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range toolMessages(t, res) {
		if c := m.(map[string]any)["content"]; c != "met" {
			t.Errorf("content = %v", c)
		}
	}
	if host.maxInFlight != 2 {
		t.Errorf("max in flight = %d, want 2", host.maxInFlight)
	}
}

func TestToolsConcurrencyCap(t *testing.T) {
	host := newToolsHost(t)
	calls := []any{}
	for i := range 4 {
		calls = append(calls, call(fmt.Sprint(i), "sleep", map[string]any{"ms": 10}))
	}
	if _, err := runTools(t, context.Background(), host, map[string]any{"calls": calls, "concurrency": 1}); err != nil {
		t.Fatal(err)
	}
	if host.maxInFlight != 1 {
		t.Errorf("max in flight = %d, want 1", host.maxInFlight)
	}
}

func TestToolsFailuresBecomeMessages(t *testing.T) {
	tests := []struct {
		name string
		call map[string]any
		want string // content prefix
		ran  bool
	}{
		{"unknown tool", call("1", "nope", map[string]any{}), `error: unknown tool "nope"`, false},
		{"missing argument", call("2", "echo", map[string]any{}), `error: invalid arguments for echo: validating root: required: missing properties: ["text"]`, false},
		{"wrong type", call("3", "add", map[string]any{"a": "1", "b": 2}), `error: invalid arguments for add: validating root: validating /properties/a: type: 1 has type "string", want "number"`, false},
		{"arguments not JSON", call("4", "echo", "{text:"), "error: invalid arguments for echo: arguments are not a JSON object", false},
		{"tool error", call("5", "fail", nil), "error: GET http://svc/: 503 Service Unavailable", true},
		{"tool panic", call("6", "boom", nil), "error: tool boom panicked: kaboom", true},
		{"no name", map[string]any{"id": "7", "arguments": map[string]any{}}, "error: the tool call has no name", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := newToolsHost(t)
			res, err := runTools(t, context.Background(), host, map[string]any{"calls": []any{tt.call, call("ok", "echo", map[string]any{"text": "fine"})}})
			if err != nil {
				t.Fatalf("the node failed: %v", err)
			}
			msgs := toolMessages(t, res)
			first := msgs[0].(map[string]any)
			if c := first["content"].(string); !strings.HasPrefix(c, tt.want) {
				t.Errorf("content = %q, want prefix %q", c, tt.want)
			}
			if first["tool_call_id"] != tt.call["id"] || first["role"] != "tool" {
				t.Errorf("message = %v", first)
			}
			if c := msgs[1].(map[string]any)["content"]; c != "fine" {
				t.Errorf("the sibling call's content = %v", c)
			}
			if ran := len(host.ran) == 2; ran != tt.ran {
				t.Errorf("tool ran = %v, want %v", ran, tt.ran)
			}
		})
	}
}

func TestToolsCallShapes(t *testing.T) {
	host := newToolsHost(t)
	res, err := runTools(t, context.Background(), host, map[string]any{"calls": []map[string]any{
		{"id": "o1", "type": "function", "function": map[string]any{"name": "echo", "arguments": `{"text":"openai shape"}`}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c := toolMessages(t, res)[0].(map[string]any)["content"]; c != "openai shape" {
		t.Errorf("content = %v", c)
	}
	for _, calls := range []any{nil, []any{}} {
		res, err := runTools(t, context.Background(), host, map[string]any{"calls": calls})
		if err != nil || len(toolMessages(t, res)) != 0 {
			t.Errorf("calls %v: res = %v, err = %v", calls, res, err)
		}
	}
	for _, bad := range []map[string]any{{"calls": "echo"}, {"calls": []any{"echo"}}, {"calls": []any{}, "concurrency": 0}} {
		if _, err := runTools(t, context.Background(), host, bad); KindOf(err) != KindInput {
			t.Errorf("with %v: err = %v, want an input error", bad, err)
		}
	}
}

// TestToolsCancelled: a cancelled context stops the calls; one ended by a
// deadline, or cancelled with DeadlineExceeded as its cause (the runner's
// attempt timer), is a timeout. The cases run on the fake clock of a
// synctest bubble, so "stops at once" is exact: at the cancellation, 30ms in.
func TestToolsCancelled(t *testing.T) {
	tests := []struct {
		name string
		end  func(context.CancelCauseFunc)
		want Kind
	}{
		{"cancelled", func(c context.CancelCauseFunc) { c(nil) }, KindCancelled},
		{"timed out", func(c context.CancelCauseFunc) { c(context.DeadlineExceeded) }, KindTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				host := newToolsHost(t)
				ctx, cancel := context.WithCancelCause(context.Background())
				time.AfterFunc(30*time.Millisecond, func() { tt.end(cancel) })
				start := time.Now()
				_, err := runTools(t, ctx, host, map[string]any{"calls": []any{
					call("1", "sleep", map[string]any{"ms": 5000}), call("2", "sleep", map[string]any{"ms": 5000}),
				}})
				if KindOf(err) != tt.want {
					t.Fatalf("err = %v (%s), want kind %s", err, KindOf(err), tt.want)
				}
				if d := time.Since(start); d != 30*time.Millisecond {
					t.Errorf("took %v to stop, want 30ms: at the cancellation", d)
				}
			})
		})
	}
	t.Run("deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			host := newToolsHost(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := runTools(t, ctx, host, map[string]any{"calls": []any{call("1", "sleep", map[string]any{"ms": 5000})}})
			if KindOf(err) != KindTimeout {
				t.Fatalf("err = %v, want a timeout", err)
			}
			if d := time.Since(start); d != 30*time.Millisecond {
				t.Errorf("took %v to stop, want 30ms: at the deadline", d)
			}
		})
	})
}
