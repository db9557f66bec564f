// Package spec is the lgx workflow file format: loading a YAML file into typed
// structs that remember where every piece came from, and validating them.
// It knows nothing about running workflows. It is the only package that
// reads YAML: what a workflow computes at run time is handed on as value
// trees (Value, see program.go) that the runner compiles.
package spec

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/internal/failure"
	"github.com/lgx-run/lgx/internal/value"
)

// Pos is a 1-based line and column in a workflow file. The zero Pos means
// "no position" (for synthesised values).
type Pos struct {
	Line int
	Col  int
}

// Name is an identifier as written in the file, with its position.
type Name struct {
	Value string
	Pos   Pos
}

// Reserved node names used by edges.
const (
	Start = "START"
	End   = "END"
)

// State key types (SPEC §2), declared once in the value model.
const (
	TypeString   = value.TypeString
	TypeNumber   = value.TypeNumber
	TypeInteger  = value.TypeInteger
	TypeBoolean  = value.TypeBoolean
	TypeList     = value.TypeList
	TypeObject   = value.TypeObject
	TypeMessages = value.TypeMessages
	TypeAny      = value.TypeAny
)

// Reducers (SPEC §2).
const (
	ReducerReplace  = "replace"
	ReducerAppend   = "append"
	ReducerMerge    = "merge"
	ReducerSum      = "sum"
	ReducerMin      = "min"
	ReducerMax      = "max"
	ReducerUnion    = "union"
	ReducerMessages = "messages"
)

// On-error policies (SPEC §3.2).
const (
	OnErrorFail     = "fail"
	OnErrorContinue = "continue"
)

// Workflow is one loaded workflow file. Slices keep file order, which is
// significant: writes of one super-step are applied in node file order.
type Workflow struct {
	File   string     // path as given by the user
	Source []byte     // the file's bytes, for diagnostics and for durable runs
	Root   *yaml.Node // document root

	Version     int // the `lgx:` field; only 1 exists
	Name        string
	NamePos     Pos
	Description string

	Secrets   []Name
	Config    Config
	Pools     []*Pool
	Providers []*Provider
	State     []*StateKey
	Tools     []*Tool
	MCP       []*MCPServer
	Nodes     []*Node
	Edges     []*Edge

	// Output lists the keys `lgx run` prints; nil when `output:` is absent
	// (meaning: every state key).
	Output    []Name
	OutputPos Pos

	lines     []int               // byte offset of each line of Source
	synthetic map[*yaml.Node]bool // values lgx made up (`output: key` → `${{ result }}`)
}

// Config is the `config:` block with defaults applied.
type Config struct {
	Pos            Pos
	Concurrency    int           // default 32
	RecursionLimit int           // default 100
	Timeout        time.Duration // whole run; 0 = none
	NodeTimeout    time.Duration // per attempt; default 60s
	Retry          RetryPolicy   // default for every node
	// MaxValueBytes bounds every rendered template and evaluated
	// expression (SPEC §9.6); 0 = nodes.DefaultMaxValueBytes.
	MaxValueBytes int64
	// Budget caps the tokens of the run's llm_calls; nil = none.
	Budget *Budget
}

// Budget is a token and/or money budget (SPEC §9.9) on the run, a pool or
// a provider.
type Budget struct {
	Pos    Pos
	Tokens int64 // 0 = no token limit
	// USD is the most the calls may cost, in US dollars, priced with each
	// provider's Price; 0 = no money limit. USDPos locates it.
	USD    float64
	USDPos Pos
	// OnExhausted is what a call does whose reservation does not fit while
	// other calls are in flight: BudgetWait (the default: wait for them to
	// settle) or BudgetFail (fail at once). Once settled usage alone leaves
	// too little, a call fails with kind budget (BudgetWait, BudgetFail)
	// or pauses the run (BudgetInterrupt: a person may raise the limit on
	// resume).
	OnExhausted string
}

// Values of Budget.OnExhausted.
const (
	BudgetFail      = "fail"
	BudgetWait      = "wait"
	BudgetInterrupt = "interrupt"
)

// Price is what a provider charges, in US dollars per million tokens.
type Price struct {
	Pos           Pos
	InputPerMTok  float64
	OutputPerMTok float64
}

// Default values of Config and RetryPolicy (SPEC §1, §3.2).
const (
	DefaultConcurrency    = 32
	DefaultRecursionLimit = 100
	DefaultNodeTimeout    = 60 * time.Second
	DefaultAttempts       = 3
	DefaultBackoff        = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	// DefaultMaxWait bounds every wait between attempts, Retry-After
	// included (SPEC §9.6).
	DefaultMaxWait = 5 * time.Minute
)

// DefaultRetryOn is the default `retry.on` list.
var DefaultRetryOn = []string{failure.Network, failure.Timeout, "429", "5xx"}

// RetryPolicy says how often and when a failed attempt is tried again.
type RetryPolicy struct {
	Pos        Pos
	Attempts   int // total tries, the first included
	Backoff    time.Duration
	MaxBackoff time.Duration
	MaxWait    time.Duration // longest wait between attempts, Retry-After included
	On         []string      // error kinds ("network", "timeout", "status", …) or status patterns ("429", "5xx")
}

// Rate is a token-bucket refill rate: Count tokens every Per.
type Rate struct {
	Count int
	Per   time.Duration
}

// PerSecond is the rate as tokens per second (0 when unset).
func (r Rate) PerSecond() float64 {
	if r.Count == 0 || r.Per == 0 {
		return 0
	}
	return float64(r.Count) / r.Per.Seconds()
}

// Pool is a named cap shared by the nodes that name it.
type Pool struct {
	Name        string
	Pos         Pos
	Concurrency int  // 0 = no concurrency cap
	Rate        Rate // zero = no rate limit
	Burst       int  // default: max(1, Concurrency)
	// PerKey, when set, is each key bucket's cap for nodes that take the
	// pool with a key (`pool: {name, key}`); the fields above cap the
	// total over every key, with or without it (see docs/decisions.md).
	PerKey *PoolLimits
	Budget *Budget // tokens of the llm_calls taking the pool; nil = none
	// Config is the user config file that declared the pool, "" for the
	// workflow's own; a config's pools are machine-wide (SPEC §9.9).
	Config string
	// capsWritten: `concurrency` or `rate` is written, valid or not (a
	// value refused is reported as such, not as a pool capping nothing).
	capsWritten bool
}

// PoolLimits are the caps of one key bucket of a keyed pool.
type PoolLimits struct {
	Pos         Pos
	Concurrency int  // 0 = no concurrency cap
	Rate        Rate // zero = no rate limit
	Burst       int  // default: max(1, Concurrency)
}

// PoolKey is a node's `pool: {name: P, key: EXPR}`: the invocation takes
// the bucket of pool P named by the key's value (SPEC §9.9).
type PoolKey struct {
	Pool Name
	Key  *yaml.Node // a string with ${{ }} expressions over the node's scope
	// KeyTree is Key as a value tree (StringValue).
	KeyTree *Value
}

// Provider is an LLM endpoint for llm_call. String fields may hold
// `${{ env.X }}` / `${{ secrets.X }}` expressions, resolved at run time.
type Provider struct {
	Name    string
	Pos     Pos
	Kind    string // openai | anthropic
	KindPos Pos
	Model   string
	BaseURL string
	APIKey  string
	Pool    Name    // optional
	Budget  *Budget // tokens of every call to this provider; nil = none
	// Price prices its calls for money budgets (budget.usd); nil = unknown.
	Price *Price
	// Capabilities are what the provider's model can do (CapTools,
	// CapStructuredOutput); nil = undeclared, taken as all that its kind
	// supports.
	Capabilities []string
	// Fallbacks are the providers asked, in order, when a call still
	// fails with a retryable kind after its retries.
	Fallbacks []Name
	Node      *yaml.Node
	// Config is the user config file that declared the provider, "" for
	// the workflow's own.
	Config string
}

// StateKey declares one key of the run state.
type StateKey struct {
	Name        string
	Pos         Pos
	Type        string // one of the Type* constants
	TypePos     Pos
	Reducer     string // one of the Reducer* constants; defaulted from Type
	ReducerPos  Pos
	Default     any // decoded YAML value; nil when absent
	HasDefault  bool
	DefaultPos  Pos
	Required    bool
	Description string
}

// Tool is a top-level tool that models may call (SPEC §5.5).
type Tool struct {
	Name        string
	Pos         Pos
	Description string
	Parameters  map[string]any // JSON Schema
	ParamsPos   Pos
	Node        *Node      // the catalog node that does the work; its expressions see `args`
	Output      *yaml.Node // expression for the tool message content; nil = `${{ result }}`
	OutputTree  *Value     // Output as a value tree; nil = `${{ result }}`
}

// Node is one entry of `nodes:`.
type Node struct {
	Name        string
	Pos         Pos
	Index       int // position in file order
	Type        string
	TypePos     Pos
	Description string

	// With is the `with:` mapping as written (nil when absent). Strings in it
	// may contain `${{ }}` expressions; positions are kept for diagnostics.
	With *yaml.Node
	// WithTree is With as a value tree (a ValueMap, or ValueInvalid when
	// With is not a mapping): the type's Static inputs are literals.
	WithTree *Value

	ForEach *yaml.Node // expression string (or literal sequence); nil = not a loop
	// ForEachTree is ForEach as a value tree: a string is one expression
	// (BareValue), a list a value.
	ForEachTree *Value
	As          string // loop variable; default "item"
	AsPos       Pos

	Concurrency int      // cap on this node's items in flight; 0 = none
	Pools       []Name   // pools named by the node
	PoolKey     *PoolKey // the keyed entry of `pool:`; its pool is in Pools too

	Timeout time.Duration // per attempt; 0 = config.node_timeout
	Retry   *RetryPolicy  // nil = config.retry
	OnError string        // fail | continue

	// Output maps state keys to values, in file order. `output: key` is
	// stored as {key: "${{ result }}"}.
	Output    []*OutputEntry
	OutputPos Pos
}

// OutputEntry is one `state key: value` of a node's output.
type OutputEntry struct {
	Key   string
	Pos   Pos
	Value *yaml.Node
	Tree  *Value // Value as a value tree
}

// Edge is one entry of `edges:`. A plain edge has To; a conditional edge has
// When (first match wins) and optionally Else.
type Edge struct {
	Pos  Pos
	From []Name // more than one = join
	To   []Name
	When []*Case
	// HasWhen is set when `when:` is a list, even an empty one (which no
	// state can match).
	HasWhen bool
	Else    []Name
	HasElse bool
}

// IsJoin reports whether the edge waits for several sources.
func (e *Edge) IsJoin() bool { return len(e.From) > 1 }

// Case is one `if:`/`to:` arm of a conditional edge.
type Case struct {
	Pos Pos
	If  *yaml.Node // expression string (with or without ${{ }})
	// IfTree is If as a value tree: a ValueExpr (BareValue), or
	// ValueInvalid.
	IfTree *Value
	To     []Name
}

// MCPServer is one entry of `mcp:` (SPEC §9.9): a stdio server (Command)
// or a streamable-HTTP one (URL).
type MCPServer struct {
	Name       string
	Pos        Pos
	Command    string
	CommandPos Pos
	Args       []string
	Env        []Name // allowlist of variable names
	Cwd        string
	URL        string
	URLPos     Pos
	Headers    map[string]string // values may hold ${{ }} expressions
	HeaderPos  map[string]Pos
	Pool       Name
	Timeout    time.Duration // per call attempt; 0 = config.node_timeout
	Tools      []Name        // allowlist; nil = all
}
