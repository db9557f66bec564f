package nodes

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// Templates change only the dicts they build: the data root (the workflow
// state) is never changed in place, so parallel items cannot race on it.
func TestTemplateDictsOfTheStateAreReadOnly(t *testing.T) {
	tests := []struct {
		name, src, want, err string
	}{
		{"set on the state", `{{ $_ := set .state.cfg "k" 1 }}`, "", "set: this dict belongs to the template's data"},
		{"unset on the state", `{{ $_ := unset .state.cfg "a" }}`, "", "unset: this dict belongs"},
		{"merge into the state", `{{ $_ := merge .state.cfg (dict "b" 2) }}`, "", "merge: this dict belongs"},
		{"mergeOverwrite into a nested state dict", `{{ $_ := mergeOverwrite .state.cfg.inner (dict "b" 2) }}`, "", "mergeOverwrite: this dict belongs"},
		{"set on a new dict", `{{ $d := dict "a" 1 }}{{ $_ := set $d "b" 2 }}{{ toJson $d }}`, `{"a":1,"b":2}`, ""},
		{"set on a copy", `{{ $c := deepCopy .state.cfg }}{{ $_ := set $c "b" 2 }}{{ $_ := set $c.inner "z" 0 }}{{ toJson $c }}`, `{"a":1,"b":2,"inner":{"x":1,"z":0}}`, ""},
		{"merge the state into a new dict", `{{ $d := dict }}{{ $_ := merge $d .state.cfg }}{{ len $d }}`, "2", ""},
		// A new dict holds the state's dicts, not copies of them.
		{"set through a new dict", `{{ $x := dict "o" .state.cfg }}{{ $_ := set $x.o "k" "H" }}`, "", "set: this dict belongs"},
		{"set through get", `{{ $x := dict "o" .state.cfg }}{{ $_ := set (get $x "o") "k" "H" }}`, "", "set: this dict belongs"},
		{"set through a merge", `{{ $d := dict }}{{ $_ := merge $d .state.cfg }}{{ $_ := set $d.inner "z" 0 }}`, "", "set: this dict belongs"},
		{"set on a new dict holding the state", `{{ $x := dict "o" .state.cfg }}{{ $_ := set $x "p" 1 }}{{ len $x }}`, "2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := map[string]any{"cfg": map[string]any{"a": 1, "inner": map[string]any{"x": 1}}}
			before := deepCopyJSON(state)
			prep, err := templateType{}.Prepare(map[string]any{"template": tt.src})
			if err != nil {
				t.Fatal(err)
			}
			out, err := templateType{}.Run(context.Background(), &Invocation{With: map[string]any{}, Prepared: prep, Data: map[string]any{"state": state}})
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("err = %v, want %q", err, tt.err)
			case tt.err == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.err == "" && out != tt.want:
				t.Errorf("out = %v, want %s", out, tt.want)
			}
			if !reflect.DeepEqual(state, before) {
				t.Errorf("the state changed: %v", state)
			}
		})
	}
}

// Parallel executions that change their own dicts, reading one shared
// state, do not race (go test -race; the process used to die with
// "concurrent map writes" when they changed the state's dict).
func TestTemplateParallelDicts(t *testing.T) {
	prep, err := templateType{}.Prepare(map[string]any{"template": `{{ $c := deepCopy .state.cfg }}{{ range until 200 }}{{ $_ := set $c (printf "k%d" .) 1 }}{{ end }}{{ len $c }}`})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]any{"cfg": map[string]any{"a": 1}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			out, err := templateType{}.Run(context.Background(), &Invocation{With: map[string]any{}, Prepared: prep, Data: map[string]any{"state": state}})
			if err != nil || out != "201" {
				t.Errorf("out %v, err %v", out, err)
			}
		})
	}
	wg.Wait()
}

func deepCopyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopyJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopyJSON(e)
		}
		return l
	}
	return v
}
