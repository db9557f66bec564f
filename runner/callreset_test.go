package runner

import (
	"context"
	"math"
	"reflect"
	"testing"
	"unsafe"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// fillNonZero sets every field of the struct v points at, recursively, to
// a non-zero value, unexported fields included: a call reused after any
// earlier invocation is at worst in this state.
func fillNonZero(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	for i := range v.NumField() {
		f := v.Field(i)
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
		fillValue(t, f, path+"."+v.Type().Field(i).Name)
	}
}

func fillValue(t *testing.T, f reflect.Value, path string) {
	t.Helper()
	switch f.Kind() {
	case reflect.Struct:
		fillNonZero(t, f, path)
	case reflect.Pointer:
		f.Set(reflect.New(f.Type().Elem()))
	case reflect.String:
		f.SetString("x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(1)
	case reflect.Float32, reflect.Float64:
		f.SetFloat(1)
	case reflect.Bool:
		f.SetBool(true)
	case reflect.Slice:
		f.Set(reflect.MakeSlice(f.Type(), 1, 1))
	case reflect.Map:
		f.Set(reflect.MakeMap(f.Type()))
	case reflect.Func:
		f.Set(reflect.MakeFunc(f.Type(), func([]reflect.Value) []reflect.Value { return nil }))
	case reflect.Interface:
		switch {
		case reflect.TypeFor[int]().Implements(f.Type()):
			f.Set(reflect.ValueOf(1))
		case reflect.TypeFor[error]() == f.Type():
			f.Set(reflect.ValueOf(context.Canceled))
		case reflect.TypeFor[context.Context]() == f.Type():
			f.Set(reflect.ValueOf(context.TODO()))
		case reflect.TypeFor[*call]().Implements(f.Type()):
			f.Set(reflect.ValueOf(new(call)))
		case reflect.TypeFor[*toolSource]().Implements(f.Type()):
			f.Set(reflect.ValueOf(new(toolSource)))
		default:
			t.Fatalf("%s: no non-zero value for interface %s: teach fillValue one", path, f.Type())
		}
	case reflect.Array:
		for i := range f.Len() {
			fillValue(t, f.Index(i), path)
		}
	default:
		t.Fatalf("%s: no non-zero value for kind %s: teach fillValue one", path, f.Kind())
	}
}

// TestCallReset: a reused call, whatever an earlier invocation left in it,
// is after reset, setEnv and setInv what a new call built for the
// invocation would be (the fields reset skips on purpose aside), so that
// assigning it field by field instead of as a whole (call.reset) leaks
// nothing from one invocation into the next; when call, exprEnv or
// nodes.Invocation gains a field, this fails until reset handles it.
func TestCallReset(t *testing.T) {
	g := compileYAML(t, `lgx: 1
name: reset
state:
  n: {type: integer, default: 0}
nodes:
  a: {type: set, output: {n: "${{ state.n + 1 }}"}}
edges:
  - {from: START, to: a}
`)
	r, err := newRun(g, Options{Environ: []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.initState(nil); err != nil {
		t.Fatal(err)
	}
	r.step = 3
	n := g.nodes[0]
	var res invResult
	buf := res.wbuf[:0]
	var ac attemptCtx
	ctx := context.Background()

	for _, index := range []int{-1, 2} {
		var c call
		fillNonZero(t, reflect.ValueOf(&c).Elem(), "call")
		c.reset(r, n, index, buf, &ac)
		c.setEnv(ctx, r, n, "item", index)
		c.setInv()

		want := call{r: r, n: n, caps: r.caps[n.idx], step: r.step, index: index, buf: buf, ac: &ac, top: true}
		want.env = exprEnv{State: r.state, vals: r.vals, Item: "item", Index: max(index, 0), Env: r.env, Secrets: r.secrets, Run: r.runInfo, ctx: ctx, timeout: n.timeout}
		want.inv = nodes.Invocation{RunID: r.id, Workflow: g.wf.Name, Node: n.name, Step: r.step, Index: index,
			Prepared: n.prep, ResultFields: n.resultFields, MaxValueBytes: g.wf.Config.MaxValueBytes, Host: &c, Tools: (*toolSource)(&c)}
		// Per evaluation, reset by progVal.eval before any use.
		c.env.budget, want.env.budget = nodes.Budget{}, nodes.Budget{}

		got, exp := reflect.ValueOf(&c).Elem(), reflect.ValueOf(&want).Elem()
		for i := range got.NumField() {
			name := got.Type().Field(i).Name
			gf := reflect.NewAt(got.Field(i).Type(), unsafe.Pointer(got.Field(i).UnsafeAddr())).Elem().Interface()
			ef := reflect.NewAt(exp.Field(i).Type(), unsafe.Pointer(exp.Field(i).UnsafeAddr())).Elem().Interface()
			if !reflect.DeepEqual(gf, ef) {
				t.Errorf("index %d: call.%s after reset = %+v, a new call has %+v", index, name, gf, ef)
			}
		}
	}
}

// TestFitsAsIs: for every key type and reducer, a write that fitsAsIs
// passes is one fitWrite returns unchanged, and the common scalar writes
// that fitWrite returns unchanged are passed (call.outputs skips fitWrite
// for them).
func TestFitsAsIs(t *testing.T) {
	types := []string{spec.TypeAny, spec.TypeString, spec.TypeInteger, spec.TypeNumber, spec.TypeBoolean, spec.TypeList, spec.TypeObject, spec.TypeMessages}
	reducers := []string{spec.ReducerReplace, spec.ReducerAppend, spec.ReducerMerge, spec.ReducerSum, spec.ReducerMin, spec.ReducerMax, spec.ReducerUnion, spec.ReducerMessages}
	values := []any{0, 7, -3, 2.0, 1.5, math.MaxFloat64, "", "s", true, false, nil, []any{1}, map[string]any{"a": 1}}
	for _, typ := range types {
		for _, red := range reducers {
			k := &keyInfo{name: "k", typ: typ, reducerName: red}
			k.asIs = scalarsAsIs(k)
			for _, v := range values {
				got, bad := fitWrite(k, v)
				unchanged := bad == "" && reflect.DeepEqual(got, v) && reflect.TypeOf(got) == reflect.TypeOf(v)
				if k.fitsAsIs(v) && !unchanged {
					t.Errorf("%s/%s: fitsAsIs(%#v) but fitWrite gives %#v, %q", typ, red, v, got, bad)
				}
				_, scalar := v.(int)
				if _, ok := v.(string); ok {
					scalar = true
				}
				if _, ok := v.(bool); ok {
					scalar = true
				}
				if unchanged && scalar && !k.fitsAsIs(v) {
					t.Errorf("%s/%s: fitWrite keeps %#v but fitsAsIs says no", typ, red, v)
				}
			}
		}
	}
}

// TestInvResultClear: a cleared result, whatever an earlier invocation
// left in it, is a zero result that keeps its writes buffer (wbuf aside),
// and fails when invResult gains a field clear does not handle.
func TestInvResultClear(t *testing.T) {
	var ir invResult
	fillNonZero(t, reflect.ValueOf(&ir).Elem(), "invResult")
	buf := ir.writes
	ir.clear()
	want := invResult{writes: buf[:0], wbuf: ir.wbuf}
	if !reflect.DeepEqual(ir, want) {
		t.Fatalf("cleared: %+v\nwant %+v", ir, want)
	}
	if cap(ir.writes) != cap(buf) {
		t.Fatalf("the writes buffer was dropped")
	}
}
