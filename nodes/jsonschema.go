package nodes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Compiled JSON Schemas (tool parameters, llm_call response formats) are
// cached by their canonical JSON text: a schema is compiled once per
// process however many invocations validate against it.
var schemaCache sync.Map // string -> *jsonschema.Schema

// schemaURL names the one in-memory resource of each compilation.
const schemaURL = "urn:lgx:schema"

// compileJSONSchema compiles a JSON Schema given as a JSON-like value
// (draft 2020-12 unless it says otherwise). References to other documents
// are refused: schemas are hermetic.
func compileJSONSchema(schema any) (*jsonschema.Schema, error) {
	b, err := json.Marshal(schema)
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	key := string(b)
	if s, ok := schemaCache.Load(key); ok {
		return s.(*jsonschema.Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("invalid schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("invalid schema: %s", schemaErrorText(err))
	}
	schemaCache.Store(key, s)
	return s, nil
}

// refuseLoader loads nothing: a $ref to another document is an error
// rather than a file or network read.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema references are not supported: %s", url)
}

// validateJSONSchema checks v against s. The error lists each violation
// as "at /path: reason" on one line.
func validateJSONSchema(s *jsonschema.Schema, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("value is not JSON: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("value is not JSON: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return errors.New(schemaErrorText(err))
	}
	return nil
}

// schemaErrorText flattens the library's multi-line message, dropping its
// header line that names the internal schema URL.
func schemaErrorText(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, schemaURL) && strings.HasPrefix(l, "jsonschema") {
			continue
		}
		l = strings.TrimPrefix(l, "- ")
		parts = append(parts, l)
	}
	if len(parts) == 0 {
		return strings.ReplaceAll(err.Error(), schemaURL, "schema")
	}
	return strings.ReplaceAll(strings.Join(parts, "; "), schemaURL, "schema")
}
