package runner

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/lgx-run/lgx/store"
)

// Checkpoint encoding that grows with what a step wrote.
//
// A checkpoint holds the JSON of every key that changed, and a key that
// grows (a list appended to, a string extended) changes every step:
// encoded from scratch, 100 steps appending 1 MB each re-encode 5 GB, and
// the store validates and compares as much. So for a key whose encoding
// is not small (keepFrom), the run remembers the value it last gave the
// store and the length of its JSON; when the new value extends that one,
// the checkpoint carries only the elements or text added, as a
// store.Extension, which the store turns into its delta. Nothing of the
// encoding is kept: what is remembered is the state's own list or string.
//
// Only for a store that WritesExtensions; any other gets full values.

// keepFrom is the encoding size from which a key's value is remembered;
// below it an extension saves nothing worth a comparison.
const keepFrom = 1 << 10

// keptValue is the value of one key the store last received, and the
// length of its JSON.
type keptValue struct {
	n     int
	list  []any  // the list given, when the value was a list
	str   string // the string given, when it was one (and no secret is declared)
	isStr bool
}

// cpEncoder encodes checkpoint values and counts what a batch holds.
type cpEncoder struct {
	batchBytes int                // size of the values the pending batch holds (maxBatchBytes)
	kept       map[int]*keptValue // by state key index
	// buf holds the JSON of the scalar values of the checkpoint being
	// encoded (appendScalar): one buffer, not one allocation per value.
	// The journal empties it for the next checkpoint when the store has
	// copied the values (a StepBatch), else drops it.
	buf []byte
	// inputs are the run's inputs as its record holds them, by key, for
	// the step-0 checkpoint (marshalInputs); nil after it.
	inputs map[string]encodedInput
}

// encodedInput is one input's value and its JSON in the run's record.
type encodedInput struct {
	v any
	b []byte
}

// put sets the new value v of state key k (named name) in cp, redacted by
// rd: as an extension when ext (the store WritesExtensions) and v extends
// the value cp's store last received for k, else whole.
func (e *cpEncoder) put(cp *store.Checkpoint, k int, name string, v any, rd redactor, ext bool) error {
	if ext {
		if x, ok := e.extension(k, v, rd); ok {
			if cp.Extended == nil {
				cp.Extended = make(map[string]store.Extension)
			}
			cp.Extended[name] = x
			e.batchBytes += len(x.Tail)
			return nil
		}
	}
	delete(e.kept, k)
	var b []byte
	if in, ok := e.inputs[name]; ok && sameValue(in.v, v) {
		// The step-0 checkpoint repeats the inputs the run's record was
		// just given: their bytes, not a second encoding (a list of
		// 2,000 URLs took 0.15 ms, before the first request).
		b = in.b
	} else if nb, ok := appendScalar(e.buf, v, rd); ok {
		b = nb[len(e.buf):len(nb):len(nb)]
		e.buf = nb
	} else {
		var err error
		if b, err = marshalValue(v, rd); err != nil {
			return err
		}
	}
	cp.Changed[name] = b
	e.batchBytes += len(b)
	if ext && len(b) >= keepFrom {
		e.keep(k, v, b, rd)
	}
	return nil
}

// appendScalar appends the JSON of v to dst, byte for byte what
// json.Marshal(rd.value(v)) gives, when v is a scalar it encodes without
// reflection: integers, booleans, null, finite floats, and strings that
// need no escaping (and, with secrets declared, no redaction: those take
// json.Marshal's path). false for anything else.
func appendScalar(dst []byte, v any, rd redactor) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case float64:
		return appendFloat(dst, x)
	case string:
		if rd.r != nil || !plainJSONString(x) {
			return dst, false
		}
		dst = append(dst, '"')
		dst = append(dst, x...)
		return append(dst, '"'), true
	}
	return dst, false
}

// maxFastDepth is how deeply appendValue nests lists and objects before it
// leaves a value to json.Marshal.
const maxFastDepth = 32

// marshalInputs returns the JSON of a run's inputs redacted by rd, as
// marshalValue does ({} for none), and each input's value and bytes within
// it, which the step-0 checkpoint reuses; with secrets declared (the
// redactor rewrites object keys too), only the JSON.
func marshalInputs(inputs map[string]any, rd redactor) ([]byte, map[string]encodedInput, error) {
	if len(inputs) == 0 {
		return []byte("{}"), nil, nil
	}
	if rd.r != nil {
		b, err := marshalValue(inputs, rd)
		return b, nil, err
	}
	type span struct{ from, to int }
	keys := slices.Sorted(maps.Keys(inputs))
	spans := make([]span, len(keys))
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		if plainJSONString(k) {
			b = append(append(append(b, '"'), k...), '"')
		} else {
			kb, err := json.Marshal(k)
			if err != nil {
				return nil, nil, err
			}
			b = append(b, kb...)
		}
		b = append(b, ':')
		from := len(b)
		nb, ok := appendValue(b, inputs[k], rd, 0)
		if !ok {
			vb, err := json.Marshal(rd.value(inputs[k]))
			if err != nil {
				return nil, nil, err
			}
			nb = append(b[:from], vb...)
		}
		b = nb
		spans[i] = span{from, len(b)}
	}
	b = append(b, '}')
	byKey := make(map[string]encodedInput, len(keys))
	for i, k := range keys {
		sp := spans[i]
		byKey[k] = encodedInput{v: inputs[k], b: b[sp.from:sp.to:sp.to]}
	}
	return b, byKey, nil
}

// sameValue reports whether a and b are the very same value: the same
// type and data word. State values are never modified in place, so the
// same value encodes to the same bytes.
func sameValue(a, b any) bool {
	type eface struct{ typ, data unsafe.Pointer }
	return *(*eface)(unsafe.Pointer(&a)) == *(*eface)(unsafe.Pointer(&b))
}

// marshalValue returns the JSON of v redacted by rd, as
// json.Marshal(rd.value(v)) does, through appendValue when it can.
func marshalValue(v any, rd redactor) ([]byte, error) {
	if b, ok := appendValue(nil, v, rd, 0); ok {
		return b, nil
	}
	return json.Marshal(rd.value(v))
}

// appendValue is appendScalar for lists and objects of such values too,
// byte for byte json.Marshal's (object keys sorted), or false, leaving
// what it appended for the caller to drop. Inputs and list state keys
// are mostly lists of plain strings and numbers, which json.Marshal
// encodes by reflection: a run's 2,000 URLs took 0.28 ms, twice before
// its first request (its inputs, its step-0 checkpoint).
func appendValue(dst []byte, v any, rd redactor, depth int) ([]byte, bool) {
	switch x := v.(type) {
	case []any:
		if x == nil {
			return append(dst, "null"...), true
		}
		if depth >= maxFastDepth {
			return dst, false
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendValue(dst, e, rd, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), true
		}
		if depth >= maxFastDepth {
			return dst, false
		}
		dst = append(dst, '{')
		for i, k := range slices.Sorted(maps.Keys(x)) {
			if !plainJSONString(k) {
				return dst, false
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, k...)
			dst = append(dst, '"', ':')
			var ok bool
			if dst, ok = appendValue(dst, x[k], rd, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	}
	return appendScalar(dst, v, rd)
}

// appendFloat encodes f as encoding/json does (its floatEncoder): the
// shortest decimal, in exponent form below 1e-6 and from 1e21, the
// exponent without a leading zero. NaN and infinities are not JSON.
func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// plainJSONString reports whether json.Marshal writes s as it stands
// between quotes: printable ASCII without the characters it escapes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// keep remembers v, whose JSON given to the store is b, when it is a list
// or a string a later value may extend.
func (e *cpEncoder) keep(k int, v any, b []byte, rd redactor) {
	kv := &keptValue{n: len(b)}
	switch x := v.(type) {
	case []any:
		if b[0] != '[' {
			return // a nil list encodes as null
		}
		kv.list = x
	case string:
		// Only without secrets: one could straddle the old end. And only
		// when x ends with a whole rune: text appended is then encoded
		// as if on its own.
		if rd.r != nil || !endsWholeRune(x) {
			return
		}
		kv.str, kv.isStr = x, true
	default:
		return
	}
	if e.kept == nil {
		e.kept = make(map[int]*keptValue)
	}
	e.kept[k] = kv
}

// extension returns v as an extension of the value kept for k, and
// remembers v in its place; false when v does not extend it.
func (e *cpEncoder) extension(k int, v any, rd redactor) (store.Extension, bool) {
	kv := e.kept[k]
	if kv == nil {
		return store.Extension{}, false
	}
	switch x := v.(type) {
	case []any:
		if kv.list == nil || !sameElems(kv.list, x) {
			return store.Extension{}, false
		}
		// Element by element, redaction and encoding give the bytes
		// they give as part of the whole list.
		added := x[len(kv.list):]
		tail, err := json.Marshal(rd.value(added))
		if err != nil {
			return store.Extension{}, false
		}
		xt := store.Extension{Base: kv.n, Tail: tail}
		switch {
		case len(added) == 0:
		case len(kv.list) == 0: // "[" + the elements + "]"
			kv.n += len(tail) - 2
		default: // "," + the elements, then "]"
			kv.n += len(tail) - 1
		}
		kv.list = x
		return xt, true
	case string:
		if !kv.isStr || len(x) < len(kv.str) || x[:len(kv.str)] != kv.str || !endsWholeRune(x) {
			return store.Extension{}, false
		}
		tail, err := json.Marshal(x[len(kv.str):])
		if err != nil {
			return store.Extension{}, false
		}
		xt := store.Extension{Base: kv.n, Tail: tail}
		kv.n += len(tail) - 2
		kv.str = x
		return xt, true
	}
	return store.Extension{}, false
}

// sameElems reports whether the first len(old) elements of l are the very
// values old holds (same type and data words: state values are never
// modified in place, so identity means equal), in O(1) when l extends
// old's own memory, else in O(len(old)) without looking into them.
func sameElems(old, l []any) bool {
	if len(l) < len(old) {
		return false
	}
	if len(old) > 0 && &old[0] == &l[0] {
		// The same memory: the core extended the list in place
		// (core.spare), so the prefix is old itself, in O(1).
		return true
	}
	type eface struct{ typ, data unsafe.Pointer }
	for i := range old {
		a := (*eface)(unsafe.Pointer(&old[i]))
		b := (*eface)(unsafe.Pointer(&l[i]))
		if *a != *b {
			return false
		}
	}
	return true
}

// endsWholeRune reports whether s ends with a complete UTF-8 sequence (or
// is empty): text appended after it is then escaped as if on its own.
func endsWholeRune(s string) bool {
	if s == "" {
		return true
	}
	r, size := utf8.DecodeLastRuneInString(s)
	return r != utf8.RuneError || size > 1
}
