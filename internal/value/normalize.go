package value

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
)

// ErrRange is wrapped by the error for a number beyond what a float64 holds
// (1e400): JSON allows it, and json.Decoder with UseNumber lets it through,
// but it has no value in the model.
var ErrRange = errors.New("number out of range")

// Number converts a JSON number as written: an integer (no fraction, no
// exponent) within int range becomes int, anything else float64, so 1.0 and
// 1e3 stay float64 and 9223372036854775808 becomes float64. A number beyond
// float64 range returns ±Inf and an error wrapping ErrRange; one too small
// for float64 becomes 0, as JSON parsers do.
func Number(n json.Number) (any, error) {
	s := string(n)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && int64(int(i)) == i {
		return int(i), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return f, fmt.Errorf("%w: %s (the largest is about 1.8e308)", ErrRange, s)
		}
		return f, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

// Normalize turns the values that decoders, node types and expressions
// produce into the canonical forms: int for integers, float64 for other
// numbers, []any and map[string]any for lists and objects (typed Go slices
// and string-keyed maps are converted, their elements normalised too). It is
// shallow for []any and map[string]any, which it returns as they are: the
// common case costs a type switch and allocates nothing. An unsigned integer
// beyond int range becomes float64 rather than wrapping negative. Values it
// does not know (NaN, maps with non-string keys, other Go types) come back
// unchanged, for the caller's JSON check to name.
func Normalize(v any) any {
	switch x := v.(type) {
	case nil, string, int, float64, bool, []any, map[string]any:
		return v
	case int64:
		if int64(int(x)) == x {
			return int(x)
		}
		return float64(x)
	case int32:
		return int(x)
	case int16:
		return int(x)
	case int8:
		return int(x)
	case uint:
		if x <= math.MaxInt {
			return int(x)
		}
		return float64(x)
	case uint8:
		return int(x)
	case uint16:
		return int(x)
	case uint32:
		return int(x)
	case uint64:
		if x <= math.MaxInt {
			return int(x)
		}
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		n, _ := Number(x)
		return n
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = Normalize(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			it := rv.MapRange()
			for it.Next() {
				out[it.Key().String()] = Normalize(it.Value().Interface())
			}
			return out
		}
	}
	return v
}

// NormalizeDeep normalises a decoded document (json.Decoder with UseNumber)
// throughout: every element of its lists and objects, in place.
func NormalizeDeep(v any) any {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			x[i] = NormalizeDeep(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = NormalizeDeep(e)
		}
		return x
	}
	return Normalize(v)
}
