package nodes

import "testing"

// BenchmarkFetchParse is checking and converting a `with` block, once per
// request: the common GET of one URL, and a POST with headers and JSON.
func BenchmarkFetchParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		with map[string]any
	}{
		{"get", map[string]any{"url": "http://127.0.0.1:8080/item/1"}},
		{"post", map[string]any{"url": "http://127.0.0.1:8080/items", "method": "POST",
			"headers": map[string]any{"Authorization": "Bearer x"}, "json": map[string]any{"a": 1}, "timeout": "5s"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r fetchRequest
				if err := r.parse(bc.with); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
