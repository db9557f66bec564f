package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := write("notes.txt", "line one\nline two\n")
	jsonFile := write("in.json", `{"query": "go", "n": 3, "ratio": 0.5, "tags": ["a"]}`)
	yamlFile := write("in.yaml", "query: yaml\nn: 4\nnested: {a: [1, 2]}\n")

	tests := []struct {
		name  string
		file  string
		flags []string
		want  map[string]any
		err   bool
	}{
		{name: "string", flags: []string{"name=Ada"}, want: map[string]any{"name": "Ada"}},
		{name: "json number", flags: []string{"n=42"}, want: map[string]any{"n": 42}},
		{name: "json float", flags: []string{"x=1.5"}, want: map[string]any{"x": 1.5}},
		{name: "json list", flags: []string{`urls=["a","b"]`}, want: map[string]any{"urls": []any{"a", "b"}}},
		{name: "json object", flags: []string{`m={"k":true}`}, want: map[string]any{"m": map[string]any{"k": true}}},
		{name: "json string", flags: []string{`s="quoted"`}, want: map[string]any{"s": "quoted"}},
		{name: "not quite json", flags: []string{"s=[1, 2"}, want: map[string]any{"s": "[1, 2"}},
		{name: "two json values is a string", flags: []string{"s=1 2"}, want: map[string]any{"s": "1 2"}},
		{name: "empty value", flags: []string{"s="}, want: map[string]any{"s": ""}},
		{name: "equals in value", flags: []string{"q=a=b"}, want: map[string]any{"q": "a=b"}},
		{name: "file verbatim", flags: []string{"doc=@" + text}, want: map[string]any{"doc": "line one\nline two\n"}},
		{name: "json file", file: jsonFile, want: map[string]any{"query": "go", "n": 3, "ratio": 0.5, "tags": []any{"a"}}},
		{name: "yaml file, flag wins", file: yamlFile, flags: []string{"n=5"}, want: map[string]any{"query": "yaml", "n": 5, "nested": map[string]any{"a": []any{1, 2}}}},
		{name: "no equals", flags: []string{"name"}, err: true},
		{name: "empty key", flags: []string{"=x"}, err: true},
		{name: "missing file", flags: []string{"doc=@" + filepath.Join(dir, "nope")}, err: true},
		{name: "input file not an object", file: write("list.yaml", "- 1\n- 2\n"), err: true},
		// Before, the first JSON value was taken and the rest ignored; and
		// 1e400 became +Inf.
		{name: "json then a stray brace is a string", flags: []string{"s=1 }"}, want: map[string]any{"s": "1 }"}},
		{name: "number beyond float64 is a string", flags: []string{"s=1e400"}, want: map[string]any{"s": "1e400"}},
		{name: "json file with text after it", file: write("junk.json", `{"a": 1} junk`), err: true},
		{name: "json file with a number beyond float64", file: write("big.json", `{"a": 1e400}`), err: true},
		// Before, YAML input files were read by yaml.Unmarshal: a timestamp
		// came out as a time.Time (then "expected string, got object"), a
		// key 1: as a map the runner refused, 2^64-1 as -1. Now as workflow
		// literals are read.
		{name: "yaml file read like workflow literals", file: write("lit.yaml", "day: 2024-01-02\nbig: 18446744073709551615\nm: {1: one}\n"),
			want: map[string]any{"day": "2024-01-02", "big": 18446744073709551615.0, "m": map[string]any{"1": "one"}}},
		{name: "yaml flow object file", file: write("flow.yaml", "{query: go, n: 2}"), want: map[string]any{"query": "go", "n": 2}},
		{name: "empty input file", file: write("empty.yaml", ""), err: true},
		{name: "yaml file with two documents", file: write("two.yaml", "a: 1\n---\nb: 2\n"), err: true},
		{name: "yaml flow object with text after it", file: write("junk.yaml", "{a: 1} ]"), err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInputs(tt.file, tt.flags)
			if tt.err {
				if err == nil || exitCode(err) != exitUsage {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"1", "x", `{"a":[1,2.5]}`, "[", "null", "1e999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = parseValue(s) // must not panic
	})
}

// TestParseTypedInputs: -i values are read by the key's declared type.
func TestParseTypedInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	types := map[string]string{"label": "string", "urls": "list", "cfg": "object", "n": "integer", "ok": "boolean", "anything": "any"}
	listJSON := write("urls.json", `["https://a.example", "https://b.example"]`)
	listYAML := write("urls.yaml", "- a\n- b\n")
	obj := write("cfg.yaml", "depth: 2\nname: x\n")
	num := write("n.txt", "42\n")
	raw := write("label.txt", "[not a list]\n")
	bad := write("bad.yaml", "a: [\n")
	tests := []struct {
		name string
		flag string
		want any
		err  bool
	}{
		{"string key keeps true as text", "label=true", "true", false},
		{"string key keeps 007", "label=007", "007", false},
		{"string key keeps JSON text", `label={"a":1}`, `{"a":1}`, false},
		{"string key file is raw", "label=@" + raw, "[not a list]\n", false},
		{"list key file as JSON", "urls=@" + listJSON, []any{"https://a.example", "https://b.example"}, false},
		{"list key file as YAML", "urls=@" + listYAML, []any{"a", "b"}, false},
		{"object key file as YAML", "cfg=@" + obj, map[string]any{"depth": 2, "name": "x"}, false},
		{"integer key file", "n=@" + num, 42, false},
		{"boolean key flag", "ok=true", true, false},
		{"any key keeps untyped rules", "anything=true", true, false},
		{"undeclared key keeps untyped rules", "other=3", 3, false},
		{"any key file is raw", "anything=@" + num, "42\n", false},
		{"object key file that is not YAML", "cfg=@" + bad, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTypedInputs("", []string{tt.flag}, types, 0)
			if tt.err {
				if err == nil || exitCode(err) != exitUsage {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			key, _, _ := strings.Cut(tt.flag, "=")
			if !reflect.DeepEqual(got[key], tt.want) {
				t.Errorf("got %#v, want %#v", got[key], tt.want)
			}
		})
	}
}
