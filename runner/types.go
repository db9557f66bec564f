package runner

import (
	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/spec"
)

// The runner's names for the value model's functions (internal/value owns
// the rules; these keep the many call sites short).

// typeName names a value's type in the vocabulary of state types.
func typeName(v any) string { return value.TypeName(v) }

// normalize turns a value into its canonical form (value.Normalize).
func normalize(v any) any { return value.Normalize(v) }

// fitType checks that v fits a key of type typ (value.Fit).
func fitType(typ string, v any) (any, string) { return value.Fit(typ, v) }

// fitWrite checks a write against its key: for append and union keys any
// element (or list) fits; for messages a message object or a list of them;
// for the others the write must fit the key's type.
func fitWrite(k *keyInfo, v any) (any, string) {
	switch k.reducerName {
	case spec.ReducerAppend, spec.ReducerUnion:
		if k.typ == spec.TypeList || k.typ == spec.TypeAny {
			return normalize(v), ""
		}
	case spec.ReducerMessages:
		return value.FitMessagesWrite(v)
	}
	return fitType(k.typ, v)
}

// expectedType describes what fitWrite accepts, for error messages.
func expectedType(k *keyInfo) string {
	switch k.reducerName {
	case spec.ReducerAppend, spec.ReducerUnion:
		if k.typ == spec.TypeList {
			return "list or list element"
		}
	case spec.ReducerMessages:
		return "message or list of messages"
	}
	return k.typ
}
