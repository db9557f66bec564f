package nodes

import (
	"fmt"
	"reflect"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// ownedMaps tracks the dicts one template execution created (dict,
// deepCopy). sprig's set, unset and merge change a dict in place; on a dict
// of the data root that would change the workflow's state outside its
// reducers, and two for_each items doing it at once would crash the
// process (concurrent map writes). So they change only dicts the execution
// owns. Map identity is the map's pointer: maps do not move.
type ownedMaps map[uintptr]bool

func (o ownedMaps) own(v any) {
	switch x := v.(type) {
	case map[string]any:
		o[reflect.ValueOf(x).Pointer()] = true
		for _, e := range x {
			o.own(e)
		}
	case []any:
		for _, e := range x {
			o.own(e)
		}
	}
}

// mine fails unless fn may change d.
func (o ownedMaps) mine(fn string, d map[string]any) error {
	if d == nil || o[reflect.ValueOf(d).Pointer()] {
		return nil
	}
	return fmt.Errorf("%s: this dict belongs to the template's data (the workflow state) and cannot be changed; change a copy: (deepCopy .state.x) or a new dict", fn)
}

// ownedFuncs returns the dict functions of one execution: dict and
// deepCopy register what they build, and set, unset and merge refuse to
// change a dict the execution did not build.
func ownedFuncs(o ownedMaps) template.FuncMap {
	sp := sprig.HermeticTxtFuncMap()
	dict := sp["dict"].(func(...any) map[string]any)
	deepCopy := sp["deepCopy"].(func(any) any)
	mustDeepCopy := sp["mustDeepCopy"].(func(any) (any, error))
	set := sp["set"].(func(map[string]any, string, any) map[string]any)
	unset := sp["unset"].(func(map[string]any, string) map[string]any)
	mustMerge := sp["mustMerge"].(func(map[string]any, ...map[string]any) (any, error))
	mustMergeOverwrite := sp["mustMergeOverwrite"].(func(map[string]any, ...map[string]any) (any, error))
	return template.FuncMap{
		"dict": func(kv ...any) map[string]any {
			d := dict(kv...)
			// The new dict only: its values are whatever it was given,
			// the state's own maps included ({{ dict "o" .state.o }}).
			o[reflect.ValueOf(d).Pointer()] = true
			return d
		},
		"deepCopy": func(v any) any {
			c := deepCopy(v)
			o.own(c)
			return c
		},
		"mustDeepCopy": func(v any) (any, error) {
			c, err := mustDeepCopy(v)
			o.own(c)
			return c, err
		},
		"set": func(d map[string]any, k string, v any) (map[string]any, error) {
			if err := o.mine("set", d); err != nil {
				return nil, err
			}
			return set(d, k, v), nil
		},
		"unset": func(d map[string]any, k string) (map[string]any, error) {
			if err := o.mine("unset", d); err != nil {
				return nil, err
			}
			return unset(d, k), nil
		},
		"merge":              mergeFunc(o, "merge", mustMerge),
		"mustMerge":          mergeFunc(o, "mustMerge", mustMerge),
		"mergeOverwrite":     mergeFunc(o, "mergeOverwrite", mustMergeOverwrite),
		"mustMergeOverwrite": mergeFunc(o, "mustMergeOverwrite", mustMergeOverwrite),
	}
}

func mergeFunc(o ownedMaps, name string, merge func(map[string]any, ...map[string]any) (any, error)) func(map[string]any, ...map[string]any) (any, error) {
	return func(dst map[string]any, srcs ...map[string]any) (any, error) {
		if err := o.mine(name, dst); err != nil {
			return nil, err
		}
		return merge(dst, srcs...)
	}
}
