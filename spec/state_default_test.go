package spec

import (
	"strings"
	"testing"
)

// TestStateDefaultFit: a state key's default is checked with the value
// model's type fit (value.Fit), the rule the runner applies to the same
// value written at run time. Before, validate had its own copy, which
// refused `default: 3.0` on an integer key that the runner accepts as 3.
func TestStateDefaultFit(t *testing.T) {
	tests := []struct {
		key  string
		want string // "" = no diagnostic
	}{
		{"{type: integer, default: 3}", ""},
		{"{type: integer, default: 3.0}", ""},
		{"{type: integer, default: 1e3}", ""},
		{"{type: integer, default: 3.5}", "default is number, not integer"},
		{"{type: integer, default: 18446744073709551615}", "default is number, not integer"},
		{"{type: number, default: 2}", ""},
		{"{type: string, default: 2}", "default is integer, not string"},
		{"{type: object, default: [1]}", "default is list, not object"},
		{"{type: messages, default: [{role: user}]}", ""},
		{"{type: messages, default: [hi]}", "default is list with a string element, not messages"},
		// The element at fault and why, as for a write or an input.
		{"{type: messages, default: [{role: human, content: hi}]}",
			`default is list whose element 0 is a message with role "human" (the roles are system, user, assistant and tool), not messages`},
		{"{type: messages, default: [{role: user}, {content: hi}]}",
			"default is list whose element 1 is an object without a role (a message has role system, user, assistant or tool), not messages"},
	}
	for _, tt := range tests {
		src := "lgx: 1\nname: m\nstate:\n  k: " + tt.key + "\nnodes:\n  a: {type: set}\nedges: [{from: START, to: a}]\n"
		w, ds := Load("m.yaml", []byte(src))
		if ds.HasErrors() {
			t.Fatalf("%s: load: %v", tt.key, ds)
		}
		got := Validate(w).String()
		if tt.want == "" {
			if strings.Contains(got, "default is") {
				t.Errorf("%s: %s", tt.key, got)
			}
			continue
		}
		if !strings.Contains(got, tt.want) || !strings.Contains(got, "m.yaml:4:") {
			t.Errorf("%s:\n%s\nwant %q at m.yaml:4", tt.key, got, tt.want)
		}
	}
}
