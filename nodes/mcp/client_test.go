package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// testServer is an in-process server of the Go SDK with tools covering
// every result shape.
func testServer(t *testing.T) *sdk.Server {
	t.Helper()
	s := sdk.NewServer(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	obj := map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}, "required": []any{"text"}}
	s.AddTool(&sdk.Tool{Name: "echo", Description: "Echoes", InputSchema: obj}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var a struct{ Text string }
		_ = json.Unmarshal(r.Params.Arguments, &a)
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "echo: " + a.Text}, &sdk.TextContent{Text: "second"}}}, nil
	})
	s.AddTool(&sdk.Tool{Name: "sum", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: `{"sum":3}`}, &sdk.ImageContent{MIMEType: "image/png", Data: []byte("abc")}},
			StructuredContent: map[string]any{"sum": 3}}, nil
	})
	s.AddTool(&sdk.Tool{Name: "fail", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "no such city"}}}, nil
	})
	s.AddTool(&sdk.Tool{Name: "hidden", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{}, nil
	})
	return s
}

// inMemory connects each server to s through an in-memory pipe and counts
// connections.
func inMemory(t *testing.T, s *sdk.Server, n *atomic.Int32) func(*Server) (sdk.Transport, error) {
	return func(*Server) (sdk.Transport, error) {
		n.Add(1)
		ct, st := sdk.NewInMemoryTransports()
		if _, err := s.Connect(context.Background(), st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}
}

func TestManagerMapsResults(t *testing.T) {
	var conns atomic.Int32
	m := NewManager([]Server{{Name: "t", Command: "unused", Tools: []string{"echo", "sum", "fail"}}}, Options{Transport: inMemory(t, testServer(t), &conns)})
	defer m.Close()
	ctx := context.Background()
	if conns.Load() != 0 {
		t.Fatal("a server started before its first use")
	}
	tools, err := m.Tools(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	if got := strings.Join(names, ","); got != "echo,fail,sum" {
		t.Errorf("tools = %s, want the allowlist echo,fail,sum (as listed)", got)
	}
	if tools[0].InputSchema["type"] != "object" {
		t.Errorf("echo schema = %v", tools[0].InputSchema)
	}
	tests := []struct {
		tool    string
		args    map[string]any
		text    string
		content any
		isErr   bool
	}{
		{"echo", map[string]any{"text": "hi"}, "echo: hi\nsecond", "echo: hi\nsecond", false},
		{"sum", nil, "{\"sum\":3}\n[image image/png, 3 bytes]", map[string]any{"sum": float64(3)}, false},
		{"fail", nil, "no such city", "no such city", true},
	}
	for _, tc := range tests {
		t.Run(tc.tool, func(t *testing.T) {
			res, err := m.Call(ctx, "t", tc.tool, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != tc.text || res.IsError != tc.isErr {
				t.Errorf("got text %q isError %v, want %q %v", res.Text, res.IsError, tc.text, tc.isErr)
			}
			got, _ := json.Marshal(res.Content())
			want, _ := json.Marshal(tc.content)
			if string(got) != string(want) {
				t.Errorf("content = %s, want %s", got, want)
			}
		})
	}
	if conns.Load() != 1 {
		t.Errorf("%d connections, want 1 shared by every call", conns.Load())
	}
}

func TestManagerErrors(t *testing.T) {
	var conns atomic.Int32
	m := NewManager([]Server{{Name: "t", Command: "unused", Tools: []string{"echo"}}}, Options{Transport: inMemory(t, testServer(t), &conns)})
	ctx := context.Background()
	var ue *UnknownError
	if _, err := m.Call(ctx, "tt", "echo", nil); !errors.As(err, &ue) || !strings.Contains(err.Error(), `did you mean "t"`) {
		t.Errorf("unknown server: %v", err)
	}
	if _, err := m.Call(ctx, "t", "ecko", nil); !errors.As(err, &ue) || !strings.Contains(err.Error(), `did you mean "echo"`) {
		t.Errorf("unknown tool: %v", err)
	}
	if _, err := m.Call(ctx, "t", "hidden", nil); !errors.As(err, &ue) {
		t.Errorf("a tool outside the allowlist was callable: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var se *ServerError
	if _, err := m.Call(ctx, "t", "echo", map[string]any{"text": "x"}); !errors.As(err, &se) {
		t.Errorf("a call after Close: %v, want a ServerError", err)
	}
}

// TestStdioRestartOnce runs a stdio server that exits after each answer:
// lgx starts it again once, then reports it gone; its stderr reaches the
// Stderr callback, line by line.
func TestStdioRestartOnce(t *testing.T) {
	exe := helperServer(t)
	lines := make(chan string, 16)
	m := NewManager([]Server{{Name: "h", Command: exe, Args: []string{"--", "-exit-after", "1"}, Env: []string{"LGX_MCP_HELPER"}}}, Options{
		Environ: []string{"LGX_MCP_HELPER=1", "PATH=/usr/bin"},
		Stderr:  func(_, line string) { lines <- line },
	})
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitExit := func() {
		t.Helper()
		select {
		case l := <-lines:
			if l != "helper exiting" {
				t.Fatalf("stderr line %q", l)
			}
		case <-ctx.Done():
			t.Fatal("the server's stderr line never came")
		}
		// Let the client see the exit.
		c, _ := m.conn("h")
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		<-done
	}
	for i := 1; i <= 2; i++ {
		if _, err := m.Call(ctx, "h", "env", nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		waitExit()
	}
	var se *ServerError
	_, err := m.Call(ctx, "h", "env", nil)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "restarted 1 time") {
		t.Errorf("after the restart: %v, want a ServerError saying it was restarted once", err)
	}
}
