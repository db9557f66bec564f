package tracing

// Attribute keys and values of the OpenTelemetry semantic conventions for
// generative AI, version 1.37.0
// (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/).
// The GenAI keys left otel-go's semconv package after v1.41, so the few
// lgx sets are declared here.
const (
	semconvVersion = "1.37.0"

	keyOperationName      = "gen_ai.operation.name"
	keyProviderName       = "gen_ai.provider.name"
	keyRequestModel       = "gen_ai.request.model"
	keyRequestMaxTokens   = "gen_ai.request.max_tokens"
	keyRequestTemperature = "gen_ai.request.temperature"
	keyResponseModel      = "gen_ai.response.model"
	keyResponseID         = "gen_ai.response.id"
	keyResponseFinish     = "gen_ai.response.finish_reasons"
	keyUsageInputTokens   = "gen_ai.usage.input_tokens"
	keyUsageOutputTokens  = "gen_ai.usage.output_tokens"
	keyToolName           = "gen_ai.tool.name"
	keyToolCallID         = "gen_ai.tool.call.id"
	keyInputMessages      = "gen_ai.input.messages"  // opt-in content
	keyOutputMessages     = "gen_ai.output.messages" // opt-in content
	keyErrorType          = "error.type"
	opInvokeWorkflow      = "invoke_workflow"
	opChat                = "chat"
	opExecuteTool         = "execute_tool"
)

// lgx's own attributes, in the lgx.* namespace.
const (
	keyRunID    = "lgx.run.id"
	keyWorkflow = "lgx.workflow"
	keyNode     = "lgx.node"
	keyIndex    = "lgx.item.index"
	keyPath     = "lgx.path"
	keyStep     = "lgx.step"
	keyAttempts = "lgx.attempts"
	keyOutcome  = "lgx.outcome"
	keyStatus   = "lgx.status"
	keyDelayMS  = "lgx.delay_ms"
	keyReason   = "lgx.reason"
	keyAttempt  = "lgx.attempt"
	keyLLMProv  = "lgx.provider"
)
