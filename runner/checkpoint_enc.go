package runner

import (
	"encoding/json"
	"runtime"
	"unicode/utf8"
	"unsafe"
)

// Checkpoint encoding that grows with what a step wrote.
//
// A checkpoint holds the JSON of every key that changed, and a key that
// grows (a list appended to, a string extended) changes every step: encoded
// from scratch, 100 steps appending 1 MB each re-encode 5 GB and allocate
// as much. So for a key whose encoding is large (bigEncoding), the run
// keeps its last encoding and the value it encoded, and when the new value
// extends that one, it appends only the new part to the encoding, in place.
//
// In place is safe because such an encoding exceeds maxBatchBytes: the
// checkpoint holding it is written (and the store copies what it keeps)
// before checkpoint returns, so nothing still refers to the bytes when the
// next step appends to them.

// bigEncoding is the size from which a key's encoding is kept between
// steps; below it a key is encoded afresh, as cheap as checking for an
// extension. It must be at least maxBatchBytes (see above).
const bigEncoding = maxBatchBytes

// keptEncoding is the last encoding of one key and what it encoded.
type keptEncoding struct {
	buf   []byte
	list  []any  // the list encoded, when the value was a list
	str   string // the string encoded, when it was one needing no escapes
	isStr bool
}

// cpEncoder encodes checkpoint values and counts what a batch holds.
type cpEncoder struct {
	batchBytes int                   // size of the values the pending batch holds (maxBatchBytes)
	kept       map[int]*keptEncoding // by state key index
}

// encode returns the JSON of v, the new value of state key k, redacted by
// rd. The result may alias a kept buffer: it is valid until the next call
// for k, and only when it is at least bigEncoding long.
func (e *cpEncoder) encode(k int, v any, rd redactor) ([]byte, error) {
	if ke := e.kept[k]; ke != nil {
		if b, ok := ke.extend(v, rd); ok {
			return b, nil
		}
		delete(e.kept, k)
	}
	b, err := json.Marshal(rd.value(v))
	if err != nil || len(b) < bigEncoding {
		return b, err
	}
	ke := &keptEncoding{buf: b}
	switch x := v.(type) {
	case []any:
		ke.list = x
	case string:
		if rd.r == nil && len(b) == len(x)+2 && endsWholeRune(x) {
			// No byte was escaped: buf is the string between quotes. Keep
			// it, not x, which is garbage once the state moves on.
			ke.str, ke.isStr = unsafe.String(unsafe.SliceData(b[1:]), len(x)), true
		}
	}
	if ke.list == nil && !ke.isStr {
		return b, nil
	}
	if e.kept == nil {
		e.kept = make(map[int]*keptEncoding)
	}
	e.kept[k] = ke
	return b, nil
}

// extend appends to ke's encoding the part of v that extends the value ke
// encoded, and reports whether v does extend it.
func (ke *keptEncoding) extend(v any, rd redactor) ([]byte, bool) {
	switch x := v.(type) {
	case []any:
		if ke.list == nil || !sameElems(ke.list, x) {
			return nil, false
		}
		// Element by element, redaction and encoding give the bytes
		// they give as part of the whole list.
		var tail []byte // replaces the closing ']'
		for i, el := range x[len(ke.list):] {
			b, err := json.Marshal(rd.value(el))
			if err != nil {
				return nil, false
			}
			if len(ke.list)+i > 0 {
				tail = append(tail, ',')
			}
			tail = append(tail, b...)
		}
		ke.list = x
		return ke.appendTail(append(tail, ']'), 0), true
	case string:
		// Only without secrets: one could straddle the old end.
		if !ke.isStr || rd.r != nil || len(x) < len(ke.str) || x[:len(ke.str)] != ke.str {
			return nil, false
		}
		tail, err := json.Marshal(x[len(ke.str):])
		if err != nil {
			return nil, false
		}
		if len(tail) != len(x)-len(ke.str)+2 || !endsWholeRune(x) {
			return nil, false // the tail needed escapes: encode afresh
		}
		return ke.appendTail(tail[1:], len(x)), true
	}
	return nil, false
}

// appendTail replaces the last byte of the kept encoding (the closing
// bracket or quote) with tail, and returns the encoding. For a kept
// string, strLen is the new string's length: ke.str then refers to the
// new encoding, never to the value the state just dropped.
//
// When the buffer must move, the heap is collected before (so that the
// new buffer is added to what is live, not to what the pacer let pile up)
// and after (so that the old one, as large as the state key, is freed
// now, not when the heap has doubled): else a run growing a 100 MB key
// peaks at several times that. Moves are few, append growing a large
// buffer by a quarter, and the heap they scan is mostly bytes.
func (ke *keptEncoding) appendTail(tail []byte, strLen int) []byte {
	n := len(ke.buf) - 1
	if n+len(tail) <= cap(ke.buf) {
		ke.buf = append(ke.buf[:n], tail...)
	} else {
		runtime.GC()
		buf := make([]byte, 0, (n+len(tail))/4*5)
		buf = append(append(buf, ke.buf[:n]...), tail...)
		ke.buf, ke.str = buf, ""
		runtime.GC()
	}
	if ke.isStr {
		ke.str = unsafe.String(unsafe.SliceData(ke.buf[1:]), strLen)
	}
	return ke.buf
}

// sameElems reports whether the first len(old) elements of l are the very
// values old holds (same type and data words: state values are never
// modified in place, so identity means equal), in O(len(old)) without
// looking into them.
func sameElems(old, l []any) bool {
	if len(l) < len(old) {
		return false
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
