package runner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/nodes/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// An MCP call that outlives the server's timeout fails with kind timeout
// and a message naming that timeout, not a bare "context deadline
// exceeded".
func TestMCPCallTimeoutNamesDuration(t *testing.T) {
	srv := sdk.NewServer(&sdk.Implementation{Name: "t", Version: "1"}, nil)
	srv.AddTool(&sdk.Tool{Name: "hang", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		<-ctx.Done() // until the client gives up
		return nil, ctx.Err()
	})
	transport := func(*mcp.Server) (sdk.Transport, error) {
		ct, st := sdk.NewInMemoryTransports()
		if _, err := srv.Connect(context.Background(), st, nil); err != nil {
			return nil, err
		}
		return ct, nil
	}
	for _, tc := range []struct{ name, nodeTimeout, want string }{
		{"server timeout", "", "timed out after 150ms"},
		{"node timeout", "\n\t\ttimeout: 120ms", "timed out after 120ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := compileYAML(t, `
lgx: 1
name: mcp-timeout
mcp:
	t: {command: x, timeout: 150ms}
state:
	out: any
nodes:
	call:
		type: mcp_call
		with: {server: t, tool: hang}
		retry: {attempts: 1}`+tc.nodeTimeout+`
edges:
	- {from: START, to: call}
	- {from: call, to: END}
`)
			_, err := Run(context.Background(), g, Options{MCPTransport: transport})
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Kind != nodes.KindTimeout || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want kind timeout containing %q", err, tc.want)
			}
		})
	}
}
