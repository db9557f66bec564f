package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/store"
)

const longAgent = `lgx: 1
name: long_agent
config: {recursion_limit: 1100}
providers:
  default: {kind: openai, model: test-model, base_url: "${{ env.LLM_URL }}", api_key: test-key}
tools:
  note:
    description: Write a note for a turn.
    parameters: {type: object, properties: {turn: {type: integer}}, required: [turn]}
    node: {type: set}
    output: "noted turn ${{ args.turn }}: the service answered within its budget and nothing else changed"
state:
  messages: {type: messages, default: [{role: user, content: "Keep notes until you are done."}]}
  turns:    {type: integer, reducer: sum, default: 0}
nodes:
  model:
    type: llm_call
    with: {messages: "${{ state.messages }}", tools: [note]}
    output: {messages: "${{ result.message }}", turns: 1}
` + agentAct

// agentAct is the rest of a tool-calling agent whose llm_call node, model,
// comes last: the tools node answering its calls, and the loop between
// them until the model calls no tool.
const agentAct = `  act:
    type: tools
    with: {calls: "${{ last(state.messages).tool_calls }}"}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: model}
  - from: model
    when:
      - {if: "len(last(state.messages).tool_calls ?? []) > 0", to: act}
    else: END
  - {from: act, to: model}
`

// TestAgentLoopStoreGrowth runs an agent loop of 500 turns (1,000 steps)
// whose messages key grows every step, on the SQLite store, and checks the
// database stays under 10 MB: checkpoints hold what each step wrote, not the
// whole state again (LangGraph's SQLite saver rewrites the whole state every
// step and reaches hundreds of MB on such a run).
func TestAgentLoopStoreGrowth(t *testing.T) {
	const turns = 500
	srv := llmtest.New(t)
	srv.SetResponder(func(r llmtest.Request) llmtest.Reply {
		n := 0
		for _, m := range r.Messages() {
			if m["role"] == "assistant" {
				n++
			}
		}
		if n >= turns {
			return llmtest.Reply{Text: "done"}
		}
		return llmtest.Reply{
			Text:      fmt.Sprintf("Turn %d: checking the service once more before I write the note.", n+1),
			ToolCalls: []llmtest.ToolCall{{ID: fmt.Sprintf("call_%d", n+1), Name: "note", Arguments: fmt.Sprintf(`{"turn": %d}`, n+1)}},
		}
	})
	path := filepath.Join(t.TempDir(), "lgx.db")
	st, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	g := compileYAML(t, longAgent)
	res, err := Run(context.Background(), g, Options{
		Store:   st,
		Environ: []string{"LLM_URL=" + srv.OpenAIURL()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.State["turns"] != turns+1 {
		t.Fatalf("turns = %v, want %d", res.State["turns"], turns+1)
	}
	msgs := res.State["messages"].([]any)
	if len(msgs) != 2*turns+2 {
		t.Fatalf("%d messages, want %d", len(msgs), 2*turns+2)
	}
	if c := msgs[len(msgs)-1].(map[string]any)["content"]; c != "done" {
		t.Fatalf("last message %v", c)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	size, err := reopened.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	stateBytes := len(fmt.Sprint(msgs))
	t.Logf("%d steps, final messages ~%d KB, database %d KB", res.Steps, stateBytes/1024, size/1024)
	if size > 10<<20 {
		t.Errorf("database is %d bytes after %d turns; want under 10 MB", size, turns)
	}
	// The checkpoints must still rebuild the full state for resume.
	cps, err := reopened.Checkpoints(context.Background(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	last := string(cps[len(cps)-1].Changed["messages"])
	if !strings.Contains(last, "noted turn 500") || !strings.Contains(last, "Keep notes") {
		t.Errorf("last checkpoint does not hold the whole conversation")
	}
}

// surviveWorkflow writes a 10 MiB string once, then runs 50 more steps
// that change only a counter.
const surviveWorkflow = `lgx: 1
name: survive
config: {recursion_limit: 200}
state:
  i:    {type: integer, default: 0}
  text: {type: string, default: ""}
nodes:
  write:
    type: template
    with: {template: '{{ repeat 10485760 "t" }}'}
    output: {text: "${{ result }}"}
  count:
    type: set
    output: {i: "${{ state.i + 1 }}"}
edges:
  - {from: START, to: write}
  - {from: write, to: count}
  - from: count
    when:
      - {if: state.i < 50, to: count}
    else: END
`

// TestReplacedStringStoredOnce: a large string written once is stored
// once in the invocation that wrote it and once in the checkpoint of its
// step, not once per step it survives (issue 12). It pins what the
// store already did: invocation records hold an invocation's own writes,
// and checkpoints only the keys a step changed.
func TestReplacedStringStoredOnce(t *testing.T) {
	g := compileYAML(t, surviveWorkflow)
	path := filepath.Join(t.TempDir(), "lgx.db")
	st, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}})
	if err != nil || res.State["i"] != 50 {
		t.Fatalf("%v %v", err, res.State["i"])
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	size, err := reopened.DiskSize()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d steps, database %d KiB", res.Steps, size>>10)
	if size > 25<<20 {
		t.Errorf("database is %d MiB for a 10 MiB string written once; want under 25 MiB", size>>20)
	}
	cps, err := reopened.Checkpoints(context.Background(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, cp := range cps {
		if v, ok := cp.Changed["text"]; ok && len(v) > 1<<20 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the string is in %d checkpoints, want 1", n)
	}
}
