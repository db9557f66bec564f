package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseInputs builds run inputs from --input-file (a JSON or YAML object)
// and then -i key=value flags, which win. A flag value is JSON when it parses
// as JSON, else a string; key=@file reads the file verbatim as a string.
func parseInputs(inputFile string, flags []string) (map[string]any, error) {
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
		if path, isFile := strings.CutPrefix(raw, "@"); isFile {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, usageErr(fmt.Errorf("-i %s=@%s: %w", key, path, err))
			}
			inputs[key] = string(data)
			continue
		}
		inputs[key] = parseValue(raw)
	}
	return inputs, nil
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
