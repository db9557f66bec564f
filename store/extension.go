package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Extensions: a checkpoint value given as what was added to the key.
//
// A list appended to or a string extended changes every step, and its new
// value holds the old one: given whole, a run appending 1 MB a step to a
// list makes the runner encode, and the store validate and compare, the
// whole list every step (quadratic in the state), and a pending batch hold
// it. So a runner may give such a key in Checkpoint.Extended instead: the
// length of the value the store holds for it (its previous value, written
// by the run's previous checkpoint that changed it) and the elements or
// text added. The store checks the length against what it holds and builds
// the new value from that, in time and memory proportional to what was
// added. Readers never see an extension: Checkpoints returns full values.

// Extension is a checkpoint value given relative to the key's previous
// value (see Checkpoint.Extended).
type Extension struct {
	// Base is the length in bytes of the previous value's JSON, as the
	// store holds it (without surrounding whitespace).
	Base int
	// Tail is what was added, of the previous value's kind: a JSON list
	// of the elements appended, or a JSON string of the text appended.
	Tail json.RawMessage
}

// ExtensionWriter is implemented by stores that accept Checkpoint.Extended.
// A runner gives extensions only to such a store; to any other, full values.
type ExtensionWriter interface {
	WritesExtensions() bool
}

// WritesExtensions reports whether st accepts Checkpoint.Extended.
func WritesExtensions(st Store) bool {
	w, ok := st.(ExtensionWriter)
	return ok && w.WritesExtensions()
}

// ErrExtensionBase is wrapped when a checkpoint extends a value the store
// does not hold (another length or kind, or none: after a failed write or
// a restart the store no longer has it).
var ErrExtensionBase = errors.New("extends a value the store does not hold")

// checkExtension rejects an extension that is not a JSON list or string.
// It looks only at the tail: validating it is what keeps a write
// proportional to what was added.
func checkExtension(cp *Checkpoint, k string, e Extension) error {
	t := bytes.TrimSpace(e.Tail)
	if len(t) == 0 || (t[0] != '[' && t[0] != '"') || !cp.Encoded && !json.Valid(t) {
		return fmt.Errorf("write checkpoint of run %s step %d: key %q: extension is not a JSON list or string", cp.RunID, cp.Step, k)
	}
	if e.Base < 2 {
		return fmt.Errorf("write checkpoint of run %s step %d: key %q: extension of a %d-byte value", cp.RunID, cp.Step, k, e.Base)
	}
	if _, ok := cp.Changed[k]; ok {
		return fmt.Errorf("write checkpoint of run %s step %d: key %q is both changed and extended", cp.RunID, cp.Step, k)
	}
	return nil
}

// extSuffix returns what replaces the closing byte of a previous value
// (of n bytes, first byte first, emptyList when it is a list of no
// elements) so that it becomes the value extended by tail (a valid
// extension tail). It fails when the kinds differ or n is not base.
func extSuffix(k string, first byte, n int, emptyList bool, e Extension) ([]byte, error) {
	t := bytes.TrimSpace(e.Tail)
	if n != e.Base || first != t[0] {
		return nil, fmt.Errorf("key %q: a %d-byte value starting with %q: %w", k, e.Base, t[0], ErrExtensionBase)
	}
	if first == '"' {
		return t[1:], nil // the string's text, then its closing quote
	}
	if emptyList || len(bytes.TrimSpace(t[1:len(t)-1])) == 0 {
		return t[1:], nil // no separator next to an empty list
	}
	s := make([]byte, 0, len(t))
	return append(append(s, ','), t[1:]...), nil
}

// isEmptyList reports whether v, a trimmed JSON value, is a list of no
// elements.
func isEmptyList(v []byte) bool {
	return len(v) >= 2 && v[0] == '[' && len(bytes.TrimSpace(v[1:len(v)-1])) == 0
}

// extendValue returns prev (trimmed) extended by e, in a new buffer.
func extendValue(k string, prev []byte, e Extension) ([]byte, error) {
	if len(prev) < 2 {
		return nil, fmt.Errorf("key %q: %w", k, ErrExtensionBase)
	}
	suf, err := extSuffix(k, prev[0], len(prev), isEmptyList(prev), e)
	if err != nil {
		return nil, err
	}
	v := make([]byte, 0, len(prev)-1+len(suf))
	return append(append(v, prev[:len(prev)-1]...), suf...), nil
}
