package nodes

import (
	"context"
	"fmt"
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
		},
		Result: []Field{
			{Name: "(values)", Type: "object", Doc: "The values given to `lgx resume`, as one object."},
		},
	}
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
