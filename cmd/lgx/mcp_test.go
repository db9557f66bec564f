package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/llmtest"
)

// TestMCPScripts runs testdata/mcp/*.txtar against the real
// @modelcontextprotocol/server-everything, found through
// LGX_TEST_MCP_EVERYTHING (.ci/run installs it); its directory is put on
// PATH so that workflows name it `mcp-server-everything`.
func TestMCPScripts(t *testing.T) {
	exe := os.Getenv("LGX_TEST_MCP_EVERYTHING")
	if exe == "" {
		t.Skip("LGX_TEST_MCP_EVERYTHING is unset: install @modelcontextprotocol/server-everything with npm (as .ci/run does) and point it at node_modules/.bin/mcp-server-everything")
	}
	cmds := scriptCmds()
	cmds["mcpllm"] = cmdMCPLLM
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/mcp",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(exe)+string(os.PathListSeparator)+os.Getenv("PATH"))
			return scriptEnv(env)
		},
		Cmds: cmds,
	})
}

// cmdMCPLLM: mcpllm VAR. Starts the protocol-faithful OpenAI test server
// as an agent of workflows/mcp_agent.yaml: asked a question, it calls
// everything__get-sum and everything__echo in parallel; given their
// results, it answers with them. $VAR is the OpenAI base URL.
func cmdMCPLLM(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mcpllm VAR")
	}
	srv, err := llmtest.Start(llmtest.Script{Respond: func(r llmtest.Request) llmtest.Reply {
		if !r.LastIsToolResult() {
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{
				{ID: "call_1", Name: "everything__get-sum", Arguments: `{"a": 2, "b": 40}`},
				{ID: "call_2", Name: "everything__echo", Arguments: `{"message": "hello over MCP"}`},
			}}
		}
		return llmtest.Reply{Text: "Answer: " + strings.Join(r.ToolResults(), "; ")}
	}})
	if err != nil {
		ts.Fatalf("mcpllm: %v", err)
	}
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.OpenAIURL())
}
