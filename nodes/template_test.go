package nodes

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestTemplateType(t *testing.T) {
	data := map[string]any{"state": map[string]any{"name": "ada", "n": 2}, "item": nil, "index": nil,
		"run": map[string]any{"id": "R", "step": 1, "workflow": "w"}}
	tests := []struct {
		name    string
		tmpl    string
		format  string
		want    any
		wantErr string
		kind    Kind
	}{
		{"text", `{{ .state.name | title }} #{{ .run.step }}`, "", "Ada #1", "", ""},
		{"json", `{"n": {{ .state.n }}, "x": [1.5]}`, "json", map[string]any{"n": 2, "x": []any{1.5}}, "", ""},
		{"missing key", `{{ .state.nope }}`, "", nil, "nope", KindTemplate},
		{"bad json", `{{ .state.name }}`, "json", nil, "not JSON", KindTemplate},
		// Before, only the first value was read and the rest ignored.
		{"json with text after it", `{"n": 1} and more`, "json", nil, "not JSON", KindTemplate},
		{"json number out of range", `[1e400]`, "json", nil, "out of range", KindTemplate},
		{"json integer and float", `[1, 1.0, 1e3, 9223372036854775808]`, "json", []any{1, 1.0, 1000.0, 9223372036854775808.0}, "", ""},
		{"bad format", `x`, "yaml", nil, "format", KindInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := templateType{}
			prep, err := typ.Prepare(map[string]any{"template": tt.tmpl})
			if err != nil {
				t.Fatal(err)
			}
			with := map[string]any{"template": tt.tmpl}
			if tt.format != "" {
				with["format"] = tt.format
			}
			got, err := typ.Run(context.Background(), &Invocation{With: with, Prepared: prep, Data: data})
			if tt.wantErr != "" {
				var ne *Error
				if !errors.As(err, &ne) || ne.Kind != tt.kind || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %s %q", err, tt.kind, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestTemplatePrepareRejects(t *testing.T) {
	for _, tmpl := range []string{`{{ env "HOME" }}`, `{{ now }}`, `{{ randAlpha 3 }}`, `{{ uuidv4 }}`, `{{ .x `} {
		if _, err := (templateType{}).Prepare(map[string]any{"template": tmpl}); err == nil {
			t.Errorf("Prepare(%q) accepted a non-hermetic or broken template", tmpl)
		}
	}
	if _, err := (templateType{}).Prepare(map[string]any{}); err == nil {
		t.Error("Prepare without template succeeded")
	}
}

func TestSetInterruptSubgraph(t *testing.T) {
	if v, err := (setType{}).Run(context.Background(), &Invocation{}); v != nil || err != nil {
		t.Errorf("set = %v, %v", v, err)
	}
	_, err := (interruptType{}).Run(context.Background(), &Invocation{With: map[string]any{"message": "ok?"}})
	var in *Interrupt
	if !errors.As(err, &in) || in.Message != "ok?" {
		t.Errorf("interrupt err = %v", err)
	}
	if _, err := (subgraphType{}).Prepare(map[string]any{"workflow": ""}); err == nil {
		t.Error("subgraph accepted an empty path")
	}
	if _, err := (subgraphType{}).Run(context.Background(), &Invocation{Prepared: "c.yaml", With: map[string]any{"input": 3}}); KindOf(err) != KindInput {
		t.Errorf("subgraph with bad input: %v", err)
	}
	for _, n := range []string{"set", "template", "subgraph", "interrupt"} {
		if _, ok := Lookup(n); !ok {
			t.Errorf("type %s not registered", n)
		}
	}
}
