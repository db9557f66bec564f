package runner

import (
	"time"

	"github.com/lgx-run/lgx/nodes"
)

// Event names (SPEC §7 `--stream events`). Every event carries Event, Run
// and TS; the others are set where they apply.
const (
	EventRunStart   = "run_start"
	EventStepStart  = "step_start"
	EventNodeStart  = "node_start"
	EventNodeEnd    = "node_end"
	EventNodeError  = "node_error"
	EventRetry      = "retry"
	EventFallback   = "fallback" // an llm_call goes to its next provider (Message says which; Kind, Error why)
	EventToken      = "token"
	EventWait       = "wait"       // an invocation waits for a cap (Waiting names it)
	EventAcquired   = "acquired"   // the first attempt holds every slot and rate token (DurationMS: since node_start); none for subgraph nodes
	EventBudget     = "budget"     // an llm_call settled its tokens with a budget (Budget, Tokens, Used, Limit; USD, USDUsed, USDLimit)
	EventStepEnd    = "step_end"   // after the barrier; State when Options.StepState
	EventCheckpoint = "checkpoint" // the step boundary was recorded; Nodes = next step's nodes
	EventInterrupt  = "interrupt"
	EventRunEnd     = "run_end"
)

// Tool call events: a `tools` node running one of a model's tool calls
// (a declared tool or an MCP tool), an invocation of its own at
// Path …/tool:ID. Tool is the name the model called, ToolCallID its call
// id; tool_end has DurationMS and, when the call failed, Kind and Error.
// A call reused from the record on resume emits neither.
const (
	EventToolStart = "tool_start"
	EventToolEnd   = "tool_end"
)

// Attempt events: one attempt of a graph invocation, once it holds its
// caps (after acquired, for the first) and when it ends. Attempt is
// 1-based, counted over the whole invocation, fallback providers included;
// attempt_end has DurationMS and, when the attempt failed, Kind and Error
// (an attempt that paused at an interrupt has neither). None for tool
// calls (tool_start/tool_end has them) nor for reused, resumed or stubbed
// invocations, which make no attempt.
const (
	EventAttemptStart = "attempt_start"
	EventAttemptEnd   = "attempt_end"
)

// Event is one observable moment of a run, JSON-encodable as one line of
// `lgx run --stream events`. Values in Writes, State and Error have declared
// secrets replaced by `***`.
type Event struct {
	Event string    `json:"event"`
	Run   string    `json:"run"`
	TS    time.Time `json:"ts"` // encodes as RFC 3339 with nanoseconds
	Step  int       `json:"step,omitempty"`
	Node  string    `json:"node,omitempty"`
	// Index is the for_each item index; nil for a node without for_each.
	Index *int `json:"index,omitempty"`
	// Path names the invocation an event is about (SPEC §9.1), e.g.
	// "3/charge[4]" or "5/tools/tool:call_1".
	Path string `json:"path,omitempty"`

	Workflow string   `json:"workflow,omitempty"` // run_start
	Nodes    []string `json:"nodes,omitempty"`    // step_start: the step's nodes; checkpoint: the next step's
	// Items maps each for_each node of a step_start to its number of
	// items, so progress can be shown as done/total.
	Items map[string]int `json:"items,omitempty"`

	Attempt    int    `json:"attempt,omitempty"`
	Error      string `json:"error,omitempty"`
	Kind       string `json:"kind,omitempty"`     // error kind (nodes.Kind)
	DelayMS    int64  `json:"delay_ms,omitempty"` // retry: delay before the next attempt
	DurationMS int64  `json:"duration_ms,omitempty"`
	Token      string `json:"token,omitempty"`
	Waiting    string `json:"waiting,omitempty"` // wait: "global", "node", "pool NAME", "rate NAME", "pool NAME key K", "rate NAME key K" or "budget NAME"
	Message    string `json:"message,omitempty"` // interrupt: the message

	// budget: the budget ("run", "pool NAME", "provider NAME"), the tokens
	// the call used, and the budget's usage and limit after it; for a
	// money budget also the call's cost and the dollars used and allowed.
	// interrupt: the budget a call paused for (on_exhausted: interrupt).
	Budget   string  `json:"budget,omitempty"`
	Tokens   int64   `json:"tokens,omitempty"`
	Used     int64   `json:"used,omitempty"`
	Limit    int64   `json:"limit,omitempty"`
	USD      float64 `json:"usd,omitempty"`
	USDUsed  float64 `json:"usd_used,omitempty"`
	USDLimit float64 `json:"usd_limit,omitempty"`

	// tool_start, tool_end: the tool the model called and the call's id.
	Tool       string `json:"tool,omitempty"`
	ToolCallID string `json:"tool_call_id,omitempty"`

	// Writes are the state writes of one invocation (node_end, and
	// node_error with on_error: continue): key -> value as written, before
	// reducers (`--stream updates`).
	Writes map[string]any `json:"writes,omitempty"`
	// State is the full state after the step (step_end, only when
	// Options.StepState: `--stream values`) or, in run_end, the output keys.
	State  map[string]any `json:"state,omitempty"`
	Status string         `json:"status,omitempty"` // run_end: completed|failed|cancelled|interrupted

	// GenAI describes every model call of an llm_call invocation, in
	// order (node_end, node_error; tool_end for a tool whose node is an
	// llm_call): one per attempt that reached the model, so usage sums
	// over retries and a trace shows each call. Prompt and Completion are
	// redacted. Not part of the event stream.
	GenAI []nodes.GenAIInfo `json:"-"`
}

// Sink receives a run's events. Emit is called from the executor's
// goroutines (concurrently for invocations of one step) and should return
// quickly; a slow sink slows the run.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit calls f(e).
func (f SinkFunc) Emit(e Event) { f(e) }

// Discard is a Sink that drops every event. Run recognises it and skips
// building events altogether, exactly as for a nil Sink.
var Discard Sink = discard{}

type discard struct{}

func (discard) Emit(Event) {}
