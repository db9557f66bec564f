package nodes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/internal/value"
)

func init() { Register(interruptType{}) }

// interruptType is the `interrupt` type (SPEC §5.7): it pauses the run;
// `lgx resume RUN -i k=v` continues it with the given values as the result.
type interruptType struct{}

func (interruptType) Name() string { return "interrupt" }

// Capabilities: an interrupt does no work; it pauses the run.
func (interruptType) Capabilities() Capabilities { return Capabilities{Instant: true, Pauses: true} }

func (interruptType) Doc() Doc {
	return Doc{
		Summary: "Pauses the run (exit 3). `lgx resume RUN -i key=value…` continues it; the given values, as one object, are the result.",
		With: []Field{
			{Name: "message", Type: "string", Doc: "What the run waits for; shown when it pauses."},
			{Name: "answer", Type: FieldTypes, Static: true,
				Doc: "The answer's names and their types, e.g. `{approved: boolean, comment: string}`: `lgx resume -i` reads each value by its type, as `lgx run -i` reads inputs, and refuses a name not listed or a value that does not fit, leaving the run paused. Without it, any names and values are taken."},
		},
		Result: []Field{
			{Name: "(values)", Type: "object", Doc: "The values given to `lgx resume`, as one object."},
		},
	}
}

// answerTypes is an interrupt's declared answer (with.answer).
type answerTypes map[string]string

func (a answerTypes) AnswerTypes() map[string]string { return a }

// Prepare checks with.answer: an object of names and state types.
func (interruptType) Prepare(static map[string]any) (any, error) {
	v, ok := static["answer"]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("with.answer must be an object of names and their types ({approved: boolean}), got %s", value.TypeName(v))
	}
	types := make(answerTypes, len(m))
	for name, t := range m {
		s, _ := t.(string)
		if !slices.Contains(value.Types(), s) {
			return nil, fmt.Errorf("with.answer.%s: %s is not a type (one of %s)", name, describe(t), strings.Join(value.Types(), ", "))
		}
		types[name] = s
	}
	return types, nil
}

// describe quotes a string and names any other value's type.
func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return value.TypeName(v)
}

// Run returns *Interrupt with the message.
func (interruptType) Run(_ context.Context, inv *Invocation) (any, error) {
	msg := ""
	if v, ok := inv.With["message"]; ok && v != nil {
		if s, ok := v.(string); ok {
			msg = s
		} else {
			msg = fmt.Sprint(v)
		}
	}
	return nil, &Interrupt{Message: msg}
}
