package spec

// This file is the declarative table of the workflow format: every block
// (mapping) a workflow file may contain and every key each block accepts,
// with its JSON type, allowed values and meaning. `lgx schema` generates the
// JSON Schema from it, and the loader can read its key lists from it, so a
// key is declared once (see Blocks, BlockByName and Block.FieldNames).

// JSON types a field may take, as named by JSON Schema.
const (
	JSONString  = "string"
	JSONInteger = "integer"
	JSONNumber  = "number"
	JSONBoolean = "boolean"
	JSONArray   = "array"
	JSONObject  = "object"
	JSONNull    = "null"
)

// Value syntaxes a string field may have beyond its JSON type.
const (
	FormatDuration = "duration" // Go duration: 500ms, 10s, 2m
	FormatRate     = "rate"     // N/s, N/min, N/h
	FormatName     = "name"     // [A-Za-z_][A-Za-z0-9_]*
	FormatExpr     = "expr"     // an expression, with or without ${{ }}
	FormatRetryOn  = "retry_on" // a failure kind, a status (429) or a class (5xx)
)

// Block names, for BlockByName and BlockField.Block.
const (
	BlockWorkflow = "workflow"
	BlockConfig   = "config"
	BlockRetry    = "retry"
	BlockPool     = "pool"
	BlockProvider = "provider"
	BlockStateKey = "state_key"
	BlockTool     = "tool"
	BlockToolNode = "tool_node"
	BlockNode     = "node"
	BlockEdge     = "edge"
	BlockCase     = "when_case"
	BlockMCP      = "mcp_server"
	BlockPerKey   = "pool_per_key"
	BlockPoolRef  = "pool_ref"
	BlockBudget   = "budget"
	BlockPrice    = "price"
)

// Block is one mapping of the workflow format and the keys it accepts.
type Block struct {
	Name        string // one of the Block* constants
	Description string
	// Shorthand, when set, is the field a bare scalar stands for: a state
	// key written `score: number` means `score: {type: number}`.
	Shorthand string
	Fields    []BlockField
}

// BlockField is one key of a block.
type BlockField struct {
	Name string
	// Types are the JSON types the value may take; empty means any value.
	Types []string
	// Enum, when set, lists the only values allowed.
	Enum []any
	// Format is the syntax of a string value (Format* constants), "" = free text.
	Format string
	// Pattern is a regular expression a string value must match.
	Pattern string
	// Positive requires an integer value of at least 1.
	Positive bool
	// AboveZero requires a number above 0; NonNegative, at least 0 (as
	// validate requires of money budgets and prices).
	AboveZero, NonNegative bool
	// ItemEnum, when set, lists the only values array elements may take.
	ItemEnum []any
	// Block names the block the value is: for JSONObject, the mapping
	// itself (or, with Map, each value of it); for JSONArray, each element.
	Block string
	// Map means the value maps names (Format name) to Block values.
	Map bool
	// Items is the JSON type of array elements when Block is "".
	Items string
	// ItemFormat is the syntax of string array elements (and of a string
	// written in place of a one-element list).
	ItemFormat string
	Required   bool
	Default    string // as shown to users; "" = none
	// Example is a valid value in YAML flow syntax, for docs and tests.
	Example     string
	Description string
}

// namePattern is the pattern of node, state key, pool, provider and tool
// names (SPEC §8): identifiers that expressions can use.
const namePattern = `^[A-Za-z_][A-Za-z0-9_]*$`

// workflowNamePattern is the pattern of the workflow's own `name`.
const workflowNamePattern = `^[a-z][a-z0-9_-]*$`

var (
	anyJSON      []string
	str          = []string{JSONString}
	integer      = []string{JSONInteger}
	boolean      = []string{JSONBoolean}
	object       = []string{JSONObject}
	array        = []string{JSONArray}
	strOrArray   = []string{JSONString, JSONArray}
	stateTypes   = enum(allTypes)
	reducerNames = []any{ReducerReplace, ReducerAppend, ReducerMerge, ReducerSum, ReducerMin, ReducerMax, ReducerUnion, ReducerMessages}
)

// Blocks is every block of the format, the top level first.
var Blocks = []Block{
	{
		Name:        BlockWorkflow,
		Description: "An lgx workflow: state keys with reducers, nodes from the built-in catalog, and edges, run in LangGraph-style super-steps.",
		Fields: []BlockField{
			{Name: "lgx", Types: integer, Enum: []any{1}, Required: true, Example: "1",
				Description: "Spec version; only 1 exists."},
			{Name: "name", Types: str, Pattern: workflowNamePattern, Required: true, Example: "research",
				Description: "Workflow name: lower-case letters, digits, _ and -, starting with a letter. Runs are listed under it and expressions see it as run.workflow."},
			{Name: "description", Types: str, Example: "Gather sources and write a brief.",
				Description: "What the workflow does, for people."},
			{Name: "secrets", Types: array, Items: JSONString, Example: "[OPENAI_API_KEY]",
				Description: "Environment variables whose values are redacted (***) everywhere lgx prints, streams or stores; expressions read them as secrets.NAME."},
			{Name: "config", Types: object, Block: BlockConfig,
				Description: "Run-wide settings: caps, limits, timeouts and the default retry policy."},
			{Name: "pools", Types: object, Block: BlockPool, Map: true,
				Description: "Named caps shared by any nodes that name them: concurrency and/or a rate."},
			{Name: "providers", Types: object, Block: BlockProvider, Map: true,
				Description: "LLM endpoints for llm_call, by name (`default` is used when a node names none)."},
			{Name: "state", Types: object, Block: BlockStateKey, Map: true,
				Description: "The run state: each key's type, reducer, default and whether it is a required input."},
			{Name: "tools", Types: object, Block: BlockTool, Map: true,
				Description: "Tools that models may call (llm_call `tools`) and the tools node runs: each a JSON-Schema `parameters` and a catalog `node` doing the work."},
			{Name: "mcp", Types: object, Block: BlockMCP, Map: true,
				Description: "MCP servers whose tools models may call (llm_call `tools: [server.tool]` or `server.*`) and mcp_call nodes call: stdio (`command`) or streamable HTTP (`url`). Each starts on first use in a run and stops when the run ends."},
			{Name: "nodes", Types: object, Block: BlockNode, Map: true,
				Description: "The nodes, by name. The order as written is significant: writes of one super-step are applied in this order."},
			{Name: "edges", Types: array, Block: BlockEdge,
				Description: "Edges between nodes: plain, fan-out (`to` a list), join (`from` a list) and conditional (`when`/`else`). START and END are reserved."},
			{Name: "output", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Example: "[summary]",
				Description: "State keys `lgx run` prints as the result (default: every key)."},
		},
	},
	{
		Name:        BlockConfig,
		Description: "Run-wide settings.",
		Fields: []BlockField{
			{Name: "concurrency", Types: integer, Positive: true, Default: "32", Example: "32",
				Description: "Global cap on node invocations in flight; `lgx run --concurrency N` overrides it."},
			{Name: "recursion_limit", Types: integer, Positive: true, Default: "100", Example: "100",
				Description: "Most super-steps a run may take; needing one more fails the run."},
			{Name: "timeout", Types: str, Format: FormatDuration, Example: "10m",
				Description: "Whole-run deadline (default none); a run past it fails and is resumable."},
			{Name: "node_timeout", Types: str, Format: FormatDuration, Default: "60s", Example: "60s",
				Description: "Default per-attempt timeout of every node."},
			{Name: "retry", Types: object, Block: BlockRetry,
				Description: "Default retry policy of every node."},
			{Name: "max_value_bytes", Types: []string{JSONInteger, JSONString}, Pattern: sizePattern, Positive: true, Default: "16MiB", Example: "64MiB",
				Description: "Most bytes one template may render or build, and one expression may build (`1000`, `512KB`, `16MiB`); exceeding it fails the invocation with kind limit."},
			{Name: "budget", Types: object, Block: BlockBudget,
				Description: "Token and/or money budget of the run's llm_calls, counted over the whole run (a resume counts the usage recorded before it)."},
		},
	},
	{
		Name:        BlockRetry,
		Description: "When and how often a failed attempt is tried again; the delay doubles from backoff to max_backoff with jitter, and a Retry-After header is honoured.",
		Fields: []BlockField{
			{Name: "attempts", Types: integer, Positive: true, Default: "3", Example: "3",
				Description: "Total tries, the first included (1 = no retry)."},
			{Name: "backoff", Types: str, Format: FormatDuration, Default: "500ms", Example: "500ms",
				Description: "Delay before the first retry."},
			{Name: "max_backoff", Types: str, Format: FormatDuration, Default: "30s", Example: "10s",
				Description: "Largest delay between tries."},
			{Name: "max_wait", Types: str, Format: FormatDuration, Default: "5m", Example: "2m",
				Description: "Longest wait between tries, a Retry-After included: a server asking for a longer one fails the attempt for good."},
			{Name: "on", Types: []string{JSONString, JSONInteger, JSONArray}, Items: JSONString, ItemFormat: FormatRetryOn, Default: `[network, timeout, "429", 5xx]`, Example: `[timeout, "429", 5xx, network]`,
				Description: "Failures that are retried: error kinds (" + retryKindList + ") or statuses (\"429\", \"5xx\")."},
		},
	},
	{
		Name:        BlockPool,
		Description: "A named cap shared by the nodes that name it (an llm_call also takes its provider's pool).",
		Fields: []BlockField{
			{Name: "concurrency", Types: integer, Positive: true, Example: "4",
				Description: "Invocations of the pool's nodes in flight at once."},
			{Name: "rate", Types: str, Format: FormatRate, Example: "60/min",
				Description: "Attempts allowed per time unit: N/s, N/min or N/h (a token bucket)."},
			{Name: "burst", Types: integer, Positive: true, Example: "4",
				Description: "Tokens the rate's bucket holds (default: the concurrency, at least 1)."},
			{Name: "per_key", Types: object, Block: BlockPerKey,
				Description: "Caps of each key's bucket for nodes that take the pool with a key (`pool: {name, key}`); the pool's own concurrency, rate and burst cap the total over all keys. Without it a key caps nothing of its own: every key shares the pool's caps."},
			{Name: "budget", Types: object, Block: BlockBudget,
				Description: "Token and/or money budget of the llm_calls taking the pool (the provider's pool included)."},
		},
	},
	{
		Name:        BlockBudget,
		Description: "A token and/or money budget (give tokens, usd or both). Before an llm_call, lgx reserves its `with.reserve` tokens, else `max_tokens` (default 4096) plus the prompt's bytes / 4, priced with the provider's `price` for usd; after it, the reservation is settled with the usage the provider reports. Usage recorded with the run counts again on resume.",
		Fields: []BlockField{
			{Name: "tokens", Types: integer, Positive: true, Example: "200000",
				Description: "Input plus output tokens allowed."},
			{Name: "usd", Types: []string{JSONNumber}, AboveZero: true, Example: "5",
				Description: "US dollars the calls may cost, priced with each provider's `price` (every provider the budget covers needs one)."},
			{Name: "on_exhausted", Types: str, Enum: []any{BudgetFail, BudgetWait, BudgetInterrupt}, Default: BudgetWait, Example: BudgetInterrupt,
				Description: "A call whose reservation does not fit while others are in flight waits for them to settle (wait, interrupt) or fails at once with kind budget (fail). Once the settled usage alone leaves too little, the call fails with kind budget (fail, wait) or pauses the run (interrupt: exit 3; `lgx resume RUN -i tokens=N` or `-i usd=X` raises the limit and runs the paused calls)."},
		},
	},
	{
		Name:        BlockPrice,
		Description: "What a provider charges, for money budgets (`budget: {usd: …}`).",
		Fields: []BlockField{
			{Name: "input_per_mtok", Types: []string{JSONNumber}, NonNegative: true, Required: true, Example: "0.15",
				Description: "US dollars per million input (prompt) tokens."},
			{Name: "output_per_mtok", Types: []string{JSONNumber}, NonNegative: true, Required: true, Example: "0.6",
				Description: "US dollars per million output tokens."},
		},
	},
	{
		Name:        BlockPerKey,
		Description: "The caps of one key bucket of a keyed pool; buckets are created on first use and dropped when idle.",
		Fields: []BlockField{
			{Name: "concurrency", Types: integer, Positive: true, Example: "2",
				Description: "Invocations with one key value in flight at once."},
			{Name: "rate", Types: str, Format: FormatRate, Example: "2/s",
				Description: "Attempts per time unit for one key value: N/s, N/min or N/h."},
			{Name: "burst", Types: integer, Positive: true, Example: "2",
				Description: "Tokens one key's rate bucket holds (default: its concurrency, at least 1)."},
		},
	},
	{
		Name:        BlockPoolRef,
		Description: "A node's keyed use of a pool: the invocation takes the bucket of the key's value.",
		Fields: []BlockField{
			{Name: "name", Types: str, Format: FormatName, Required: true, Example: "crawl",
				Description: "The pool."},
			{Name: "key", Types: str, Required: true, Example: `${{ split(item, "/")[2] }}`,
				Description: "The bucket: a string whose ${{ }} expressions see the invocation's scope (state, item, index, env, secrets, run)."},
		},
	},
	{
		Name:        BlockProvider,
		Description: "An LLM endpoint. String fields may use ${{ env.X }} and ${{ secrets.X }}.",
		Fields: []BlockField{
			{Name: "kind", Types: str, Enum: providerKindEnum, Required: true, Example: "openai",
				Description: "API flavour: openai (any OpenAI-compatible endpoint: OpenAI, Ollama, vLLM, llama.cpp) or anthropic."},
			{Name: "model", Types: str, Example: "gpt-4o-mini",
				Description: "Model used when a node names none."},
			{Name: "base_url", Types: str, Example: "http://127.0.0.1:11434/v1",
				Description: "API root the SDK expects (OpenAI-style ends in /v1); default: the kind's public endpoint."},
			{Name: "api_key", Types: str, Example: "${{ secrets.OPENAI_API_KEY }}",
				Description: "API key, treated as a secret; default: the kind's usual environment variable (OPENAI_API_KEY, ANTHROPIC_API_KEY)."},
			{Name: "pool", Types: str, Format: FormatName, Example: "llm",
				Description: "Pool every call to this provider takes a slot (and rate token) of."},
			{Name: "budget", Types: object, Block: BlockBudget,
				Description: "Token and/or money budget of every call to this provider."},
			{Name: "price", Types: object, Block: BlockPrice,
				Description: "Price per million input and output tokens, for money budgets."},
			{Name: "capabilities", Types: array, Items: JSONString, ItemEnum: providerCapEnum, Example: "[tools]",
				Description: "What the model can do, of tools and structured_output; default: both (all its kind supports). validate warns when an llm_call using tools or response_format may reach, directly or as a fallback, a provider that does not list them."},
			{Name: "fallbacks", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Example: "[backup]",
				Description: "Providers asked in order when a call still fails with a retryable kind (network, timeout, 429, 5xx) after its retries; each under its own pool and budget. result.provider names the one that answered."},
		},
	},
	{
		Name:        BlockMCP,
		Description: "An MCP server: `command` (stdio) or `url` (streamable HTTP), not both. Strings in `headers` may use ${{ env.X }} and ${{ secrets.X }}.",
		Fields: []BlockField{
			{Name: "command", Types: str, Example: "npx",
				Description: "Program of a stdio server, looked up in PATH."},
			{Name: "args", Types: array, Items: JSONString, Example: `["-y", "@modelcontextprotocol/server-everything"]`,
				Description: "Arguments of the command."},
			{Name: "env", Types: array, Items: JSONString, ItemFormat: FormatName, Example: "[API_TOKEN]",
				Description: "Names of environment variables passed to the server; it gets these and PATH and HOME, never the rest of lgx's environment."},
			{Name: "cwd", Types: str, Example: "./tools",
				Description: "Working directory of the command, relative to the workflow file (default: lgx's)."},
			{Name: "url", Types: str, Example: "http://127.0.0.1:8931/mcp",
				Description: "Endpoint of a streamable-HTTP server (http or https)."},
			{Name: "headers", Types: object, Example: `{Authorization: "Bearer ${{ secrets.DOCS_TOKEN }}"}`,
				Description: "HTTP headers sent with every request to `url`."},
			{Name: "pool", Types: str, Format: FormatName, Example: "mcp",
				Description: "Pool every call to this server takes a slot (and rate token) of."},
			{Name: "timeout", Types: str, Format: FormatDuration, Example: "30s",
				Description: "Per call attempt (default: config.node_timeout)."},
			{Name: "tools", Types: array, Items: JSONString, Example: "[echo, get-sum]",
				Description: "The only tools of the server lgx offers and calls (default: all it lists)."},
		},
	},
	{
		Name:        BlockStateKey,
		Description: "One state key. A bare type name is shorthand for {type: NAME}.",
		Shorthand:   "type",
		Fields: []BlockField{
			{Name: "type", Types: str, Enum: stateTypes, Default: "any", Example: "list",
				Description: "Value type; a write that does not fit fails its node. messages implies reducer messages."},
			{Name: "reducer", Types: str, Enum: reducerNames, Default: "replace", Example: "append",
				Description: "How a write merges into the current value: replace (two writes in one step are an error), append, merge, sum, min, max, union, messages."},
			{Name: "default", Types: anyJSON, Example: "[]",
				Description: "Initial value; a key without one starts as null."},
			{Name: "required", Types: boolean, Default: "false", Example: "false",
				Description: "The key must be given as a run input."},
			{Name: "description", Types: str, Example: "pages to read",
				Description: "What the key holds, for people."},
		},
	},
	{
		Name:        BlockTool,
		Description: "A tool models may call: its arguments' JSON Schema and the catalog node that does the work (its expressions see `args`).",
		Fields: []BlockField{
			{Name: "description", Types: str, Example: "Status of a named service",
				Description: "What the tool does, as shown to the model."},
			{Name: "parameters", Types: object, Example: "{type: object, properties: {service: {type: string}}, required: [service]}",
				Description: "JSON Schema of the arguments; calls that fail it become error tool messages."},
			{Name: "node", Types: object, Block: BlockToolNode, Required: true,
				Description: "The catalog node run per call; its expressions see the call's arguments as `args`."},
			{Name: "output", Types: anyJSON, Example: "${{ result.body }}",
				Description: "The tool message content, evaluated after the node ran (default: ${{ result }})."},
		},
	},
	{
		Name:        BlockToolNode,
		Description: "The catalog node a tool runs.",
		Fields: []BlockField{
			{Name: "type", Types: str, Required: true, Example: "http_fetch",
				Description: "Catalog type (lgx nodes lists them)."},
			{Name: "description", Types: str, Example: "GET the status page",
				Description: "What the node does, for people."},
			{Name: "with", Types: object, Example: `{url: "http://127.0.0.1/${{ args.service }}"}`,
				Description: "Inputs of the type (lgx nodes TYPE); strings may contain ${{ }} expressions."},
			{Name: "pool", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Example: "web",
				Description: "Pool (or list of pools) each call takes a slot of."},
			{Name: "timeout", Types: str, Format: FormatDuration, Example: "10s",
				Description: "Per-attempt timeout (default config.node_timeout)."},
			{Name: "retry", Types: object, Block: BlockRetry,
				Description: "Retry policy (default config.retry)."},
		},
	},
	{
		Name:        BlockNode,
		Description: "One node: a catalog type, its inputs, and the state keys it writes.",
		Fields: []BlockField{
			{Name: "type", Types: str, Required: true, Example: "http_fetch",
				Description: "Catalog type (lgx nodes lists them)."},
			{Name: "description", Types: str, Example: "One GET per URL",
				Description: "What the node does, for people."},
			{Name: "with", Types: object, Example: `{url: "${{ url }}"}`,
				Description: "Inputs of the type (lgx nodes TYPE); strings may contain ${{ }} expressions."},
			{Name: "for_each", Types: []string{JSONString, JSONArray}, Format: FormatExpr, Example: "${{ state.urls }}",
				Description: "Run once per element of this list (an expression or a literal list); items run concurrently and write in index order."},
			{Name: "as", Types: str, Format: FormatName, Default: "item", Example: "url",
				Description: "Name of the loop variable (`index` is set too)."},
			{Name: "concurrency", Types: integer, Positive: true, Example: "3",
				Description: "Cap on this node's invocations (for_each items) in flight."},
			{Name: "pool", Types: []string{JSONString, JSONArray, JSONObject}, Block: BlockPoolRef, Example: "web",
				Description: "Pool (or list of pools) each invocation takes a slot of; `{name: P, key: EXPR}` (alone or in the list, once per node) takes the slot of the key value's bucket of P."},
			{Name: "timeout", Types: str, Format: FormatDuration, Example: "10s",
				Description: "Per-attempt timeout (default config.node_timeout)."},
			{Name: "retry", Types: object, Block: BlockRetry,
				Description: "Retry policy (default config.retry)."},
			{Name: "on_error", Types: str, Enum: []any{OnErrorFail, OnErrorContinue}, Default: OnErrorFail, Example: OnErrorContinue,
				Description: "fail: a failure that outlives its retries fails the run; continue: the output is evaluated with result null and error set."},
			{Name: "output", Types: []string{JSONString, JSONObject}, Example: `{documents: "Source: ${{ url }}"}`,
				Description: "State writes after the node ran: key → value (with ${{ }} seeing result and error); a bare key is shorthand for {key: ${{ result }}}."},
		},
	},
	{
		Name:        BlockEdge,
		Description: "An edge: from one node (or, as a join, all of a list) to a node or a list of nodes, or conditionally through `when`/`else`.",
		Fields: []BlockField{
			{Name: "from", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Required: true, Example: "START",
				Description: "Source node, or a list of nodes for a join that waits for all of them; START begins the run."},
			{Name: "to", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Example: "[fetch_news, fetch_docs]",
				Description: "Target node, or a list (a fan-out: all in the next step); END ends a path."},
			{Name: "when", Types: array, Block: BlockCase,
				Description: "Conditional targets; the first case whose `if` holds fires."},
			{Name: "else", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Example: "END",
				Description: "Target(s) when no `when` case matches; without it nothing fires."},
		},
	},
	{
		Name:        BlockCase,
		Description: "One case of a conditional edge.",
		Fields: []BlockField{
			{Name: "if", Types: []string{JSONString, JSONBoolean}, Format: FormatExpr, Required: true, Example: "state.score >= 0.8",
				Description: "Condition: an expression on the state after the step (with or without ${{ }})."},
			{Name: "to", Types: strOrArray, Items: JSONString, ItemFormat: FormatName, Required: true, Example: "write_summary",
				Description: "Target node or list of nodes."},
		},
	},
}

// BlockByName returns the block named name (a Block* constant).
func BlockByName(name string) (*Block, bool) {
	for i := range Blocks {
		if Blocks[i].Name == name {
			return &Blocks[i], true
		}
	}
	return nil, false
}

// FieldNames lists the block's keys in table order: what the loader
// accepts, and the candidates of its "did you mean" hints.
func (b *Block) FieldNames() []string {
	names := make([]string, len(b.Fields))
	for i, f := range b.Fields {
		names[i] = f.Name
	}
	return names
}

// Field returns the block's field named name.
func (b *Block) Field(name string) (*BlockField, bool) {
	for i := range b.Fields {
		if b.Fields[i].Name == name {
			return &b.Fields[i], true
		}
	}
	return nil, false
}

// Suggest returns the candidate closest to s by edit distance, or "" when
// none is close enough to be what the user meant; commands use it for
// their "did you mean" hints, so that every hint in lgx agrees.
func Suggest(s string, candidates []string) string { return suggest(s, candidates) }

// enum is a list of names as a field's Enum.
func enum(names []string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = n
	}
	return out
}
