package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// parseInputs builds run inputs from --input-file (a JSON or YAML object)
// and then -i key=value flags, which win. A flag value is JSON when it parses
// as JSON, else a string; key=@file reads the file verbatim as a string.
// It is used where the keys have no declared type (resume's answers).
func parseInputs(inputFile string, flags []string) (map[string]any, error) {
	return parseTypedInputs(inputFile, flags, nil, 0)
}

// readInputFile reads a file named by -i key=@file or --input-file, at
// most limit bytes (config.max_value_bytes; 0: its default): an input is a
// value like any other, and a file of no end (-i s=@/dev/zero) must not
// take every byte of memory before anything is said.
func readInputFile(path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = nodes.DefaultMaxValueBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %s, the most a value may hold (config.max_value_bytes)", path, nodes.FormatByteSize(limit))
	}
	return data, nil
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
func parseTypedInputs(inputFile string, flags []string, types map[string]string, limit int64) (map[string]any, error) {
	inputs := map[string]any{}
	if inputFile != "" {
		data, err := readInputFile(inputFile, limit)
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
			data, err := readInputFile(path, limit)
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

// decodeDocument reads one JSON or YAML document of any shape: as JSON when
// it is JSON, else as YAML read the way workflow literals are
// (spec.DecodeValue: a timestamp stays its text, a key `1:` becomes "1", an
// integer beyond int64 a number, within the alias and nesting limits).
func decodeDocument(data []byte) (any, error) {
	v, jsonErr := value.DecodeJSON(data)
	if jsonErr == nil || errors.Is(jsonErr, value.ErrRange) {
		return v, jsonErr // JSON, or JSON with a number no value can hold
	}
	v, err := decodeYAML(data)
	if err != nil {
		if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			return nil, jsonErr // meant as JSON: its error says more
		}
		return nil, err
	}
	return v, nil
}

// decodeYAML reads one YAML document as workflow literals are read.
func decodeYAML(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // no document at all
			return nil, nil
		}
		return nil, err
	}
	// One document, nothing after it: yaml.v3 ends a flow mapping or list
	// at its closing bracket and would read `{"a": 1} junk` as {"a": 1}.
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("after the first value: %w", err)
	default:
		return nil, errors.New("more than one YAML document (---); give one")
	}
	return spec.DecodeValue(&doc)
}

// parseValue reads a flag value as JSON when it is one JSON value (nothing
// after it), else as the string itself.
func parseValue(raw string) any {
	if v, err := value.DecodeJSON([]byte(raw)); err == nil {
		return v
	}
	return raw
}

// decodeObject reads a JSON or YAML document that must be an object.
func decodeObject(data []byte) (map[string]any, error) {
	v, err := decodeDocument(data)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object of inputs, got %s", value.TypeName(v))
	}
	return obj, nil
}
