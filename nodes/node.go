// Package nodes is the catalog of node types. Validation, execution,
// `lgx nodes`, `lgx schema` and the generated docs all read the one registry
// here, so a type is declared once. A type knows nothing of state, reducers
// or super-steps: it turns resolved inputs into a result.
package nodes

import (
	"context"
	"net/http"
	"time"
)

// FieldTypes is the type of a field that maps names to state types
// ({approved: boolean, comment: string}): validation checks each type.
const FieldTypes = "types"

// Field documents one `with` input or one result field of a type.
type Field struct {
	Name     string
	Type     string // string, integer, number, boolean, duration, bytes, list, object, messages, any, or FieldTypes
	Enum     []string
	Default  string // as shown to users; "" = none
	Required bool
	// Static fields are used as written: `${{ }}` in them is not an
	// expression (e.g. a Go template's own text), and they are available to
	// Prepare at compile time.
	Static bool
	// Positive integer fields must be at least 1: validate checks a
	// literal and the schema says `minimum: 1`, so that a value the node
	// would refuse is reported before the run starts.
	Positive bool
	// Check, when set, says what is wrong with a literal value of the
	// field ("" when nothing is), as the type would at run time: validate
	// reports it at the value, before anything runs. It sees the value
	// as decoded from YAML, only when no `${{ }}` is in it.
	Check func(v any) string
	Doc   string
}

// Doc describes a type for `lgx nodes`, the schema and the docs.
type Doc struct {
	Summary string
	With    []Field
	Result  []Field
	// NoResult says that the result is always null (set): `validate`
	// then rejects every `result.FIELD` in the node's output, which
	// could only fail at run time. A type with no Result fields and
	// NoResult false documents its result in the summary.
	NoResult bool
	// OneOf lists groups of fields of which at most one may be given
	// (e.g. body | json); Required groups need exactly one.
	OneOf []OneOf
}

// OneOf is a group of mutually exclusive fields.
type OneOf struct {
	Fields   []string
	Required bool
}

// Type is one catalog entry.
type Type interface {
	// Name is the `type:` value, e.g. "http_fetch".
	Name() string
	// Doc describes the inputs and result.
	Doc() Doc
	// Run performs one invocation (one attempt). It must honour ctx, return
	// a JSON-like result (nil, bool, int, float64, string, []any,
	// map[string]any), and report failures as *Error so that the retry
	// policy can read their kind.
	Run(ctx context.Context, inv *Invocation) (any, error)
}

// Preparer is implemented by types that can do work once per workflow at
// compile time, from the literal values of their Static fields (parse a
// template, compile a schema). `lgx validate` calls it too, so its errors
// are reported before a run; the returned value reaches Run as
// Invocation.Prepared.
type Preparer interface {
	Prepare(static map[string]any) (any, error)
}

// AnswerSchema is implemented by the prepared value of a type that pauses
// for an answer whose names and types the workflow declares (an interrupt
// with `answer`): resume reads the answer's values by their types and
// refuses a name it does not list or a value that does not fit, before
// the run goes on. AnswerTypes maps each name to a state type.
type AnswerSchema interface {
	AnswerTypes() map[string]string
}

// Capabilities are what validation, the runner, the graph drawing and the
// docs need to know of a type besides its fields. They are declared once,
// beside the type, so that no other package names a node type.
type Capabilities struct {
	// Pure invocations have no effect outside the run and depend only on
	// their inputs (set, template). The runner may record a run of steps
	// made only of pure invocations in one write: after a crash, resume
	// re-runs the unrecorded ones, which gives the same writes.
	Pure bool
	// Instant types do no work worth a goroutine or a timeout (set,
	// interrupt): their invocations run inline, without an attempt timeout.
	Instant bool
	// OneRequest types send one HTTP request an attempt (its redirects
	// aside) and need no connection of the run's once it is answered
	// (http_fetch): once every invocation of a run's last step has
	// started, the runner closes the connections that come back.
	OneRequest bool
	// HoldsNoSlot types hold no cap slot themselves: the invocations they
	// start do (a subgraph's children, a tools node's calls). Otherwise a
	// global cap of 1 would deadlock. They get no default attempt timeout.
	HoldsNoSlot bool
	// ReadsData types read Invocation.Data, the template data root.
	ReadsData bool
	// Pauses types may pause the run (interrupt).
	Pauses bool
	// ProviderField names the `with` field whose literal names the
	// provider an invocation calls (llm_call: "provider"); the invocation
	// takes that provider's pool, reserves tokens from its budgets, and
	// validate checks that the provider is declared ("default" when the
	// field is not given).
	ProviderField string
	// ProviderNeeds lists the `with` fields that, when given, need a
	// capability of the provider (SPEC §9.9 `capabilities:`); validate
	// warns when the provider, or a fallback, declares it lacks it.
	ProviderNeeds []ProviderNeed
	// ToolsField names the `with` field listing the tools a model may call
	// (llm_call: "tools"); validate checks each literal name against the
	// declared tools and MCP servers.
	ToolsField string
	// ChildField names the `with` field holding a child workflow's path,
	// relative to the workflow file (subgraph: "workflow"); ChildInputField
	// the mapping whose keys must be state keys of the child. Validate
	// loads the child to check both.
	ChildField, ChildInputField string
	// ServerField names the `with` field naming an MCP server under `mcp:`
	// (mcp_call: "server"): validate checks it is declared, and the
	// invocation takes the server's pool and timeout. ServerToolField names
	// the field whose literal must be a tool the server's allowlist keeps,
	// ServerArgsField the field holding that tool's arguments (checked
	// against the tool's input schema by `validate --online` when
	// literal).
	ServerField, ServerToolField, ServerArgsField string
	// CallsField names the `with` field holding tool calls [{id, name,
	// arguments}] (tools: "calls"); `validate --online` checks the MCP
	// tools that literal calls name.
	CallsField string
}

// ProviderNeed is one `with` field that needs a provider capability.
type ProviderNeed struct {
	Field      string
	Capability string // one of ProviderCapabilities
}

// Provider capabilities a call may need, as a provider's `capabilities:`
// names them. ProviderCapabilities lists them all, in the order the schema
// and the docs show them.
const (
	ProviderCapTools            = "tools"
	ProviderCapStructuredOutput = "structured_output"
)

// ProviderCapabilities is every provider capability.
var ProviderCapabilities = []string{ProviderCapTools, ProviderCapStructuredOutput}

// Capable is implemented by types that have capabilities; a type that is
// not has none (an ordinary type with effects, like http_fetch).
type Capable interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns t's capabilities.
func CapabilitiesOf(t Type) Capabilities {
	if c, ok := t.(Capable); ok {
		return c.Capabilities()
	}
	return Capabilities{}
}

// Invocation is everything one attempt of a node (or of one for_each item)
// sees. With holds the resolved `with` values: expressions evaluated,
// defaults not applied (types apply their own).
type Invocation struct {
	RunID    string
	Workflow string
	Node     string
	Step     int
	Index    int // for_each item index; -1 when the node is not a loop
	Attempt  int // 1-based

	With     map[string]any
	Prepared any
	// Data is the template data root {state, item, index, run} (SPEC §5.3).
	Data map[string]any
	// ResultFields, when not nil, holds the only top-level fields of the
	// result that the workflow reads (its `output` expressions use
	// `result.NAME` and nothing else of `result`). A type may leave the
	// other fields out when they cost work to build; nil means all.
	ResultFields map[string]bool
	// MaxValueBytes is config.max_value_bytes: the most a template may
	// render or build (0 = DefaultMaxValueBytes).
	MaxValueBytes int64

	// Host gives the invocation the run's services.
	Host Host
	// Tools are the tools the invocation may offer a model and call (nil
	// when the run has none): the workflow's declared tools and its MCP
	// servers' tools, behind one interface.
	Tools ToolSource
}

// Host is the services the runner offers a type during an invocation. It
// never lets a type reach back into the run: what a type needs the
// executor to schedule (a child workflow, a tool call) goes through a
// ChildRun result or a ToolSource.
type Host interface {
	// HTTPClient is the run's shared, tuned client.
	HTTPClient() *http.Client
	// IdempotencyKey is derived from the run id and the invocation's path
	// (SPEC §9.1): the same across retries and resumes, different for every
	// other invocation (loop visits, items, tool calls, subgraph children).
	IdempotencyKey() string
	// Token streams a piece of model output as a `token` event.
	Token(text string)
	// Provider resolves a provider by name (env and secret expressions
	// evaluated).
	Provider(name string) (*Provider, error)
}

// ToolSource lists and calls tools. The runner's implementation serves a
// workflow's declared tools and its MCP servers' tools; each call is an
// invocation of its own, scheduled by the executor under its tool node's
// caps, with the path …/tool:ID, recorded when it finishes and never run
// again on resume.
type ToolSource interface {
	// List returns the declarations of the named tools, in order; an
	// unknown name is an error (an *UnknownToolError when the source can
	// suggest a near name).
	List(names []string) ([]ToolSpec, error)
	// Call runs one tool call and returns the tool message content.
	Call(ctx context.Context, call ToolCall) (any, error)
}

// ChildRun is what a composite type's Run returns (subgraph): the child
// workflow to run, path relative to the parent file, with its inputs. The
// executor runs it within the same attempt, sharing the parent's caps,
// its invocations under this invocation's path; the invocation's result is
// the child's final state. A type never runs a child itself.
type ChildRun struct {
	Workflow string
	Input    map[string]any
}

// GenAIInfo describes one model call for observers (tracing): what was
// asked of which provider, what came back and when. Prompt and Completion
// are raw and may hold secrets; the runner redacts them before anyone sees
// them.
type GenAIInfo struct {
	Provider      string // the provider's kind: openai | anthropic
	RequestModel  string
	ResponseModel string
	ResponseID    string // the provider's id of the response (gen_ai.response.id)
	MaxTokens     int
	Temperature   *float64
	InputTokens   int
	OutputTokens  int
	FinishReason  string
	Started       time.Time
	Ended         time.Time
	Prompt        string // the system prompt and messages as JSON
	Completion    string
	Error         string
}

// GenAIReporter is implemented by a Host that observes model calls
// (llm_call reports each call it makes).
type GenAIReporter interface {
	ReportGenAI(GenAIInfo)
}

// Provider is a resolved LLM endpoint.
type Provider struct {
	Name    string
	Kind    string // openai | anthropic
	Model   string
	BaseURL string
	APIKey  string
}

// ToolCall is one call of a declared tool, as a model asked for it.
type ToolCall struct {
	// ID is the call id the model gave; it names the call's invocation
	// (…/tool:ID). Position is the call's place in the list, used instead
	// when the id is empty or repeated.
	ID       string
	Position int
	Name     string
	Args     map[string]any
}

// Composite is implemented by types whose invocations run a child workflow
// (subgraph). Subworkflow returns the child's path, relative to the file
// that names it, from the node's prepared value, so that the runner can
// load, check and record every child before a run starts (SPEC §9.2).
type Composite interface {
	Subworkflow(prepared any) string
}

// ToolSpec is a tool as offered to a model.
type ToolSpec struct {
	Name        string
	Description string
	Parameters  map[string]any // JSON Schema
}
