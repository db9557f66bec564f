package value

import (
	"fmt"
	"math"
)

// Fit checks that v fits a state key of type typ and returns it normalised,
// with the one conversion each numeric type allows: an integral float64
// (within ±2^53, where float64 holds every integer exactly) becomes int for
// an integer key, and an int becomes float64 for a number key. null fits
// every type. It returns "" and the fitted value, or nil and what v is
// instead ("string", "list with a string element") when v does not fit.
func Fit(typ string, v any) (any, string) {
	v = Normalize(v)
	if v == nil {
		return nil, ""
	}
	switch typ {
	case TypeAny, "":
		return v, ""
	case TypeString:
		if _, ok := v.(string); ok {
			return v, ""
		}
	case TypeInteger:
		switch x := v.(type) {
		case int:
			return v, ""
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int(x), ""
			}
		}
	case TypeNumber:
		switch x := v.(type) {
		case float64:
			return v, ""
		case int:
			return float64(x), ""
		}
	case TypeBoolean:
		if _, ok := v.(bool); ok {
			return v, ""
		}
	case TypeList:
		if _, ok := v.([]any); ok {
			return v, ""
		}
	case TypeObject:
		if _, ok := v.(map[string]any); ok {
			return v, ""
		}
	case TypeMessages:
		if l, ok := v.([]any); ok {
			for _, m := range l {
				if _, ok := m.(map[string]any); !ok {
					return nil, "list with a " + TypeName(m) + " element"
				}
			}
			for i, m := range l {
				if p := MessageProblem(m.(map[string]any)); p != "" {
					return nil, fmt.Sprintf("list whose element %d is %s", i, p)
				}
			}
			return v, ""
		}
	}
	return nil, TypeName(v)
}

// FitMessagesWrite checks a write to a key with the messages reducer,
// which takes one message or a list of them (SPEC §2), and returns it
// normalised, or nil and what v is instead, as Fit does.
func FitMessagesWrite(v any) (any, string) {
	v = Normalize(v)
	if m, ok := v.(map[string]any); ok {
		if p := MessageProblem(m); p != "" {
			return nil, p
		}
		return m, ""
	}
	return Fit(TypeMessages, v)
}

// MessageProblem describes what keeps m from being a message (SPEC §2:
// {id?, role: system|user|assistant|tool, content, …}), or "" when it is
// one. A removal {id: X, remove: true} is a message write too. Only the
// role is checked: content may be null (an assistant message that only
// calls tools) and providers add fields of their own.
func MessageProblem(m map[string]any) string {
	if rm, _ := m["remove"].(bool); rm {
		return ""
	}
	role, ok := m["role"]
	if !ok || role == nil {
		return "an object without a role (a message has role system, user, assistant or tool)"
	}
	switch role {
	case "system", "user", "assistant", "tool":
		return ""
	}
	if r, ok := role.(string); ok {
		return fmt.Sprintf("a message with role %q (the roles are system, user, assistant and tool)", r)
	}
	return fmt.Sprintf("a message whose role is %v (%s), not a string (the roles are system, user, assistant and tool)", role, TypeName(role))
}

// Fits reports whether v fits a state key of type typ (see Fit).
func Fits(typ string, v any) bool {
	_, bad := Fit(typ, v)
	return bad == ""
}
