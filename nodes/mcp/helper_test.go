package mcp

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMain turns the test binary into a stdio MCP server when
// LGX_MCP_HELPER=1 (it must then be allowlisted: lgx passes nothing else).
func TestMain(m *testing.M) {
	if os.Getenv("LGX_MCP_HELPER") == "1" {
		helperMain()
		return
	}
	os.Exit(m.Run())
}

// helperMain serves one tool, env (the server's environment variable
// names, sorted), and exits after -exit-after answers when set.
func helperMain() {
	fs := flag.NewFlagSet("helper", flag.ExitOnError)
	exitAfter := fs.Int("exit-after", 0, "")
	args := os.Args[1:]
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	_ = fs.Parse(args)
	s := sdk.NewServer(&sdk.Implementation{Name: "helper", Version: "1"}, nil)
	answered := 0
	s.AddTool(&sdk.Tool{Name: "env", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var names []string
		for _, kv := range os.Environ() {
			names = append(names, strings.SplitN(kv, "=", 2)[0])
		}
		sort.Strings(names)
		answered++
		if *exitAfter > 0 && answered >= *exitAfter {
			defer func() {
				go func() {
					// After the answer is written.
					time.Sleep(200 * time.Millisecond)
					fmt.Fprintln(os.Stderr, "helper exiting")
					os.Exit(3)
				}()
			}()
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strings.Join(names, ",")}}}, nil
	})
	_ = s.Run(context.Background(), &sdk.StdioTransport{})
}

// helperServer returns the command that starts the helper server.
func helperServer(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestStdioEnvAllowlist(t *testing.T) {
	m := NewManager([]Server{{Name: "h", Command: helperServer(t), Env: []string{"LGX_MCP_HELPER", "WANTED"}}}, Options{
		Environ: []string{"LGX_MCP_HELPER=1", "WANTED=1", "SECRET_TOKEN=s3cr3t", "PATH=/usr/bin:/bin", "HOME=/tmp", "OTHER=x"},
	})
	defer m.Close()
	res, err := m.Call(context.Background(), "h", "env", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "HOME,LGX_MCP_HELPER,PATH,WANTED" {
		t.Errorf("server environment = %s, want only the allowlist and PATH, HOME", res.Text)
	}
}
