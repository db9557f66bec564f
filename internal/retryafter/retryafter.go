// Package retryafter reads HTTP Retry-After values. It is a leaf package so
// that http_fetch (package nodes) and the LLM adapters (nodes/llm, which
// nodes imports) share one implementation.
package retryafter

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse reads a Retry-After header value (RFC 9110 §10.2.3): either
// delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT",
// also the obsolete RFC 850 and asctime forms), the latter measured from now.
// A date in the past yields 0. ok is false when v is empty or malformed, so
// that the caller falls back to its own backoff. Huge delays saturate rather
// than overflow; capping them is the retry policy's job. http_fetch and the
// LLM providers both use it.
func Parse(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) { // all digits, just too many
				return time.Duration(math.MaxInt64), true
			}
			return 0, false
		}
		if n > uint64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}
