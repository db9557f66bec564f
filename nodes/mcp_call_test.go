package nodes

import (
	"errors"
	"testing"
)

// TestUnknownToolMessage: the message a model reads for a tool the host
// does not have suggests the near name as the model wrote the call.
func TestUnknownToolMessage(t *testing.T) {
	near := func(tool, suggest string) error {
		return &UnknownToolError{Tool: tool, Suggest: suggest, Err: errors.New("no such tool")}
	}
	tests := []struct {
		name, call string
		err        error
		want       string
	}{
		{"dotted", "everything.ecko", near("ecko", "echo"), `error: unknown tool "everything.ecko" (did you mean "everything.echo"?)`},
		{"model form", "everything__ecko", near("ecko", "echo"), `error: unknown tool "everything__ecko" (did you mean "everything__echo"?)`},
		{"wrapped", "t__nope", &Error{Kind: KindInput, Err: near("nope", "note")}, `error: unknown tool "t__nope" (did you mean "t__note"?)`},
		{"nothing near", "t.zzz", near("zzz", ""), `error: unknown tool "t.zzz"`},
		{"untyped error", "nope", Errorf(KindInput, "unknown tool %q", "nope"), `error: unknown tool "nope"`},
		{"no error", "nope", nil, `error: unknown tool "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unknownTool(tt.call, tt.err); got != tt.want {
				t.Errorf("unknownTool(%q) = %q, want %q", tt.call, got, tt.want)
			}
		})
	}
}
