package runner

import (
	"fmt"
	"maps"
	"math"
	"reflect"

	"github.com/lgx-run/lgx/spec"
)

// reducer merges one write into a key's current value (SPEC §2). owned
// reports that cur was created by this step's earlier writes to the same
// key, so it may be extended in place; an unowned cur may be shared with an
// earlier snapshot or another key and is never mutated. A reducer returns
// the new value.
type reducer func(cur, w any, owned bool) (any, error)

// reducerFor returns the reducer named name (a spec.Reducer* constant).
func reducerFor(name string) (reducer, bool) {
	switch name {
	case spec.ReducerReplace, "":
		return reduceReplace, true
	case spec.ReducerAppend:
		return reduceAppend, true
	case spec.ReducerMerge:
		return reduceMerge, true
	case spec.ReducerSum:
		return reduceSum, true
	case spec.ReducerMin:
		return reduceMin, true
	case spec.ReducerMax:
		return reduceMax, true
	case spec.ReducerUnion:
		return reduceUnion, true
	case spec.ReducerMessages:
		return reduceMessages, true
	}
	return nil, false
}

func reduceReplace(_, w any, _ bool) (any, error) { return w, nil }

// extendsOnly reports whether the reducer named name only appends to the
// current list, never changing or removing an element in it, so that the
// elements a reader of an earlier state holds stay as they were when the
// core extends the list in place (core.spare). messages replaces and
// removes in place, so it owns a list within one step only.
func extendsOnly(name string) bool {
	return name == spec.ReducerAppend || name == spec.ReducerUnion
}

// ownList returns a list that may be extended in place.
func ownList(cur any, owned bool, extra int) ([]any, error) {
	if cur == nil {
		return make([]any, 0, extra), nil
	}
	l, ok := cur.([]any)
	if !ok {
		return nil, fmt.Errorf("current value is %s, not a list", typeName(cur))
	}
	if owned {
		return l, nil
	}
	// Room for a quarter more, as append's own growth gives a long list:
	// the core extends a list of an appending key in place from step to
	// step (core.spare), so this copy is the last for a while.
	out := make([]any, len(l), len(l)+max(extra, len(l)/4, 4))
	copy(out, l)
	return out, nil
}

// reduceAppend concatenates a list write and appends any other value as one
// element, null included (SPEC §2): a failed for_each item's null result
// keeps its place, so the list still lines up with the items. An empty
// list is the write that adds nothing.
func reduceAppend(cur, w any, owned bool) (any, error) {
	if wl, ok := w.([]any); ok {
		l, err := ownList(cur, owned, len(wl))
		if err != nil {
			return nil, err
		}
		return append(l, wl...), nil
	}
	l, err := ownList(cur, owned, 1)
	if err != nil {
		return nil, err
	}
	return append(l, w), nil
}

// reduceMerge shallow-merges an object write; the write's keys win.
func reduceMerge(cur, w any, owned bool) (any, error) {
	if w == nil {
		return cur, nil
	}
	wm, ok := w.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("merge needs an object, got %s", typeName(w))
	}
	var m map[string]any
	switch c := cur.(type) {
	case nil:
		m = make(map[string]any, len(wm))
	case map[string]any:
		if owned {
			m = c
		} else {
			m = make(map[string]any, len(c)+len(wm))
			maps.Copy(m, c)
		}
	default:
		return nil, fmt.Errorf("current value is %s, not an object", typeName(cur))
	}
	maps.Copy(m, wm)
	return m, nil
}

// reduceSum adds numbers; integers stay integers unless a float is involved.
func reduceSum(cur, w any, _ bool) (any, error) {
	if w == nil {
		return cur, nil
	}
	if cur == nil {
		return w, nil
	}
	switch c := cur.(type) {
	case int:
		switch x := w.(type) {
		case int:
			s := c + x
			if (x > 0 && s < c) || (x < 0 && s > c) {
				return nil, fmt.Errorf("sum overflows an integer: %d + %d", c, x)
			}
			return s, nil
		case float64:
			return finiteSum(float64(c), x)
		}
	case float64:
		switch x := w.(type) {
		case int:
			return finiteSum(c, float64(x))
		case float64:
			return finiteSum(c, x)
		}
	}
	return nil, fmt.Errorf("sum needs numbers, got %s + %s", typeName(cur), typeName(w))
}

// finiteSum adds two numbers; a sum beyond float64 (±Inf) is not JSON and
// fails the write instead of being stored (SPEC §9.6).
func finiteSum(a, b float64) (any, error) {
	s := a + b
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return nil, fmt.Errorf("sum overflows a number: %g + %g", a, b)
	}
	return s, nil
}

// compare orders two numbers or two strings.
func compare(a, b any) (int, error) {
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			switch {
			case x < y:
				return -1, nil
			case x > y:
				return 1, nil
			}
			return 0, nil
		}
	case int:
		switch y := b.(type) {
		case int:
			return cmpNum(float64(x), float64(y)), nil
		case float64:
			return cmpNum(float64(x), y), nil
		}
	case float64:
		switch y := b.(type) {
		case int:
			return cmpNum(x, float64(y)), nil
		case float64:
			return cmpNum(x, y), nil
		}
	}
	return 0, fmt.Errorf("cannot compare %s with %s", typeName(a), typeName(b))
}

func cmpNum(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func reduceMin(cur, w any, _ bool) (any, error) { return keepExtreme("min", -1, cur, w) }

func reduceMax(cur, w any, _ bool) (any, error) { return keepExtreme("max", 1, cur, w) }

// keepExtreme keeps the write when it compares to the current value with
// the given sign (-1: smaller, for min; 1: larger, for max), else the
// current value; a null on either side yields the other.
func keepExtreme(name string, sign int, cur, w any) (any, error) {
	if w == nil {
		return cur, nil
	}
	if cur == nil {
		return w, nil
	}
	c, err := compare(w, cur)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if c*sign > 0 {
		return w, nil
	}
	return cur, nil
}

// equalValue is equality for union membership: == for comparable scalars,
// deep equality otherwise; an integer and a float of the same value are equal.
func equalValue(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case int, float64:
		c, err := compare(a, b)
		return err == nil && c == 0
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return reflect.DeepEqual(a, b)
}

// listWrite prepares a list reducer: the current list, extendable in
// place, and the write's elements (a non-list write is one element).
func listWrite(cur, w any, owned bool) (l, items []any, err error) {
	items, ok := w.([]any)
	if !ok {
		items = []any{w}
	}
	l, err = ownList(cur, owned, len(items))
	return l, items, err
}

// reduceUnion appends the elements of a list write (or a scalar write) not
// already present, keeping first-seen order.
func reduceUnion(cur, w any, owned bool) (any, error) {
	if w == nil {
		return cur, nil
	}
	l, items, err := listWrite(cur, w, owned)
	if err != nil {
		return nil, err
	}
next:
	for _, it := range items {
		for _, have := range l {
			if equalValue(have, it) {
				continue next
			}
		}
		l = append(l, it)
	}
	return l, nil
}

// reduceMessages appends messages; a message whose id already exists
// replaces it in place, and {id: X, remove: true} deletes X.
func reduceMessages(cur, w any, owned bool) (any, error) {
	if w == nil {
		return cur, nil
	}
	l, items, err := listWrite(cur, w, owned)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("a message must be an object, got %s", typeName(it))
		}
		id, hasID := m["id"]
		if hasID && id != nil {
			pos := -1
			for i, have := range l {
				if hm, ok := have.(map[string]any); ok && equalValue(hm["id"], id) {
					pos = i
					break
				}
			}
			if rm, _ := m["remove"].(bool); rm {
				if pos >= 0 {
					l = append(l[:pos], l[pos+1:]...)
				}
				continue
			}
			if pos >= 0 {
				l[pos] = m
				continue
			}
		} else if rm, _ := m["remove"].(bool); rm {
			return nil, fmt.Errorf("a message with remove: true needs an id")
		}
		l = append(l, m)
	}
	return l, nil
}
