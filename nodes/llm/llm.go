// Package llm adapts LLM providers (the official OpenAI and Anthropic Go
// SDKs) to one provider-neutral, always-streaming Client. It knows nothing
// of workflows: the llm_call node type in package nodes maps its inputs to a
// Request and the Response to a result. (It cannot import package nodes,
// which imports it; errors are reported as *Error and mapped there.)
package llm

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Roles of a Message.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Message is one conversation message, the SPEC §2 message object.
type Message struct {
	ID         string
	Role       string // system | user | assistant | tool
	Content    string
	ToolCalls  []ToolCall // assistant messages
	ToolCallID string     // tool messages: the call answered
	Name       string     // tool messages: the tool's name
}

// ToolCall is a model's request to run a tool.
type ToolCall struct {
	ID        string
	Name      string
	Arguments map[string]any
	// InvalidArguments is the text the model gave as arguments when it is
	// not a JSON object (a small model's truncated or malformed output);
	// Arguments is then empty. The call is kept, so that the tools node
	// answers it with an error the model can recover from (SPEC §5.5),
	// instead of the whole call failing.
	InvalidArguments string
}

// Tool is a tool offered to the model.
type Tool struct {
	Name        string
	Description string
	Parameters  map[string]any // JSON Schema of the arguments object
}

// Request is one completion request.
type Request struct {
	Model       string
	System      string
	Messages    []Message
	Tools       []Tool
	Temperature *float64
	MaxTokens   int // 0: the provider's default (Anthropic, which requires one: DefaultMaxTokens)
	// JSONSchema, when set, asks for a JSON answer fitting this bare schema.
	JSONSchema map[string]any
}

// Usage counts tokens.
type Usage struct {
	InputTokens  int
	OutputTokens int
}

// Response is one completed answer.
type Response struct {
	Content      string
	Message      Message // the assistant message (no ID; the caller assigns one)
	ToolCalls    []ToolCall
	Usage        Usage
	FinishReason string // the provider's own value (stop, tool_calls, end_turn, tool_use…)
	Model        string
	// ID is the provider's id of the response (OpenAI `chatcmpl-…`,
	// Anthropic `msg_…`), for tracing; "" when the provider sent none.
	ID string
}

// Client completes requests, streaming text pieces to onToken (which may be
// nil) as they arrive.
type Client interface {
	Complete(ctx context.Context, req Request, onToken func(string)) (*Response, error)
}

// Kinds of provider.
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
)

// Kinds is every provider kind, in the order docs and hints list them;
// the workflow format's `kind:` takes exactly these.
var Kinds = []string{KindOpenAI, KindAnthropic}

// KeyEnv is the environment variable a provider of the kind reads its API
// key from when it declares none (the vendors' SDKs read the same).
func KeyEnv(kind string) string {
	switch kind {
	case KindOpenAI:
		return "OPENAI_API_KEY"
	case KindAnthropic:
		return "ANTHROPIC_API_KEY"
	}
	return ""
}

// Config selects and configures a provider.
type Config struct {
	Kind    string // openai | anthropic
	BaseURL string // API root as the SDK expects it ("" = the SDK default)
	APIKey  string
	// HTTPClient is used for every request (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// New returns a Client for cfg. SDK retries are off: the runner's retry
// policy owns retries.
func New(cfg Config) (Client, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	switch cfg.Kind {
	case KindOpenAI, "":
		return newOpenAI(cfg), nil
	case KindAnthropic:
		return newAnthropic(cfg), nil
	default:
		return nil, fmt.Errorf("unknown provider kind %q (want %s)", cfg.Kind, strings.Join(Kinds, " or "))
	}
}
