package nodes

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"
)

// JSON Schemas (tool parameters, llm_call response formats) are validated
// with github.com/google/jsonschema-go. It replaced
// santhosh-tekuri/jsonschema, whose package init compiles the metaschemas
// of five drafts on every start of lgx: 18–43 ms measured against 0.3 ms,
// which alone broke the 20 ms budget of `lgx validate`.

// Compiled schemas are cached by their canonical JSON text: a schema is
// resolved once per process however many invocations validate against it.
var schemaCache sync.Map // string -> *jsonschema.Resolved

// compileJSONSchema resolves a JSON Schema given as a JSON-like value.
// References to other documents are refused (no Loader): schemas are
// hermetic, nothing is read from disk or network.
func compileJSONSchema(schema any) (*jsonschema.Resolved, error) {
	b, err := json.Marshal(schema)
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	key := string(b)
	if s, ok := schemaCache.Load(key); ok {
		return s.(*jsonschema.Resolved), nil
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("invalid schema: %w", err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("invalid schema: %s", schemaErrorText(err))
	}
	schemaCache.Store(key, rs)
	return rs, nil
}

// validateJSONSchema checks v against s. The value goes through JSON first
// so that Go ints, typed maps and slices validate like the JSON they stand
// for.
func validateJSONSchema(s *jsonschema.Resolved, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("value is not JSON: %w", err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("value is not JSON: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s", schemaErrorText(err))
	}
	return nil
}

// schemaErrorText puts the library's (possibly multi-line) message on one
// line.
func schemaErrorText(err error) string {
	var parts []string
	for _, l := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
