package nodes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestHTTPFetchBodyMemory fetches one 8 MiB response with max_bytes 8 MiB
// and checks the bytes allocated while fetching it (an upper bound of the
// peak heap it adds) stay within 1.5 × max_bytes, for the body as text and
// for a JSON body parsed in place. Before, the buffer grew by doubling from
// 1 MiB, was copied into a string, and the JSON decoder copied it again.
func TestHTTPFetchBodyMemory(t *testing.T) {
	const size = 8 << 20
	text := bytes.Repeat([]byte("lgx body "), size/9+1)[:size]
	doc, _ := json.Marshal(map[string]any{"data": string(text[:size-11])})
	if len(doc) != size {
		t.Fatalf("JSON document is %d bytes, want %d", len(doc), size)
	}
	env := newFetchEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ct := text, "text/plain"
		if r.URL.Path == "/json" {
			body, ct = doc, "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	}))
	tests := []struct {
		path   string
		fields []string
		check  func(map[string]any) bool
	}{
		{"/text", []string{"body"}, func(res map[string]any) bool { return len(res["body"].(string)) == size }},
		{"/json", []string{"json"}, func(res map[string]any) bool {
			m, ok := res["json"].(map[string]any)
			return ok && len(m["data"].(string)) == size-11
		}},
		{"/json", []string{"body", "json"}, func(res map[string]any) bool {
			m, ok := res["json"].(map[string]any)
			return ok && len(m["data"].(string)) == size-11 && len(res["body"].(string)) == size
		}},
	}
	typ, _ := Lookup("http_fetch")
	for _, tc := range tests {
		t.Run(strings.Join(tc.fields, "+"), func(t *testing.T) {
			fields := map[string]bool{}
			for _, f := range tc.fields {
				fields[f] = true
			}
			inv := &Invocation{RunID: "run1", Node: "n", Index: -1, Attempt: 1, Host: env.host, ResultFields: fields,
				With: map[string]any{"url": env.srv.URL + tc.path, "max_bytes": size}}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			res, err := typ.Run(context.Background(), inv)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(res.(map[string]any)) {
				t.Fatalf("unexpected result")
			}
			// The parsed value is the user's data; the budget is for
			// everything else (buffers, copies) plus the body itself.
			parsed := 0
			if fields["json"] {
				parsed = size - 12
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %.2f MiB for an 8 MiB response (%.2f MiB parsed)", float64(alloc)/(1<<20), float64(parsed)/(1<<20))
			if budget := uint64(size*3/2 + parsed); alloc > budget {
				t.Errorf("allocated %d bytes fetching %d; want at most %d (1.5 × max_bytes, plus the parsed value)", alloc, size, budget)
			}
		})
	}
}
