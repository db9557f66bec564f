package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/spec"
)

// parseInputs builds run inputs from --input-file (a JSON or YAML object)
// and then -i key=value flags, which win. A flag value is JSON when it parses
// as JSON, else a string; key=@file reads the file verbatim as a string.
// It is used where the keys have no declared type (resume's answers).
func parseInputs(inputFile string, flags []string) (map[string]any, error) {
	return parseTypedInputs(inputFile, flags, nil)
}

// inputTypes maps each state key of wf to its declared type.
func inputTypes(wf *spec.Workflow) map[string]string {
	types := make(map[string]string, len(wf.State))
	for _, k := range wf.State {
		types[k.Name] = k.Type
	}
	return types
}

// parseTypedInputs is parseInputs reading each -i value by its key's
// declared type (SPEC §9.8), so that what a user types means what the key
// holds: a string key takes the text as typed (-i label=true is "true",
// -i id=007 is "007"); a list, object or messages key parses key=@file as
// a JSON or YAML document; number, integer and boolean keys read a file's
// trimmed text like a flag value. Keys without a declared type (or `any`)
// keep the untyped rules.
func parseTypedInputs(inputFile string, flags []string, types map[string]string) (map[string]any, error) {
	inputs := map[string]any{}
	if inputFile != "" {
		data, err := os.ReadFile(inputFile)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--input-file: %w", err))
		}
		obj, err := decodeObject(data)
		if err != nil {
			return nil, usageErrf("--input-file %s: %v", inputFile, err)
		}
		inputs = obj
	}
	for _, kv := range flags {
		key, raw, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return nil, usageErrf("-i %q: want key=value", kv)
		}
		typ := types[key]
		if path, isFile := strings.CutPrefix(raw, "@"); isFile {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, usageErr(fmt.Errorf("-i %s=@%s: %w", key, path, err))
			}
			switch typ {
			case spec.TypeList, spec.TypeObject, spec.TypeMessages:
				v, err := decodeDocument(data)
				if err != nil {
					return nil, usageErrf("-i %s=@%s: %s is a %s key, and the file is not JSON or YAML: %v", key, path, key, typ, err)
				}
				inputs[key] = v
			case spec.TypeNumber, spec.TypeInteger, spec.TypeBoolean:
				inputs[key] = parseValue(strings.TrimSpace(string(data)))
			default:
				inputs[key] = string(data)
			}
			continue
		}
		if typ == spec.TypeString {
			inputs[key] = raw
			continue
		}
		inputs[key] = parseValue(raw)
	}
	return inputs, nil
}

// decodeDocument reads one JSON or YAML document of any shape.
func decodeDocument(data []byte) (any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil && !dec.More() {
			return normalizeJSON(v), nil
		}
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return normalizeYAML(v), nil
}

// parseValue reads a flag value as JSON when it is valid JSON, else as
// the string itself.
func parseValue(raw string) any {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if _, err := dec.Token(); err != nil { // nothing after the value
			return normalizeJSON(v)
		}
	}
	return raw
}

// decodeObject reads a JSON or YAML document that must be an object.
func decodeObject(data []byte) (map[string]any, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		return normalizeJSON(v).(map[string]any), nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	obj, ok := normalizeYAML(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object of inputs, got %T", v)
	}
	return obj, nil
}

// normalizeJSON turns json.Number into int (when integral) or float64, the
// value model the runner uses.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
	}
	return v
}

// normalizeYAML turns YAML's map[any]any-free output into JSON-like values
// (yaml.v3 already uses map[string]any for string keys).
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
	case int64:
		return int(x)
	case uint64:
		return int(x)
	}
	return v
}
