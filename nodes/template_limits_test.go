package nodes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTemplateLimits: hostile templates fail with kind limit (or stop at
// the deadline) instead of exhausting memory or running forever.
func TestTemplateLimits(t *testing.T) {
	data := map[string]any{"state": map[string]any{"s": "ab", "list": []any{1, 2, 3}}}
	tests := []struct {
		name  string
		tmpl  string
		limit int64
		kind  Kind   // "" = the context's deadline
		want  string // in the error
	}{
		{"until huge", `{{ until 1000000000 }}`, 0, KindLimit, "config.max_value_bytes (16 MiB)"},
		{"untilStep huge", `{{ untilStep 0 2000000000 1 }}`, 0, KindLimit, "max_value_bytes"},
		{"untilStep endless", `{{ untilStep 0 10 0 }}`, 0, KindLimit, "max_value_bytes"},
		{"seq huge", `{{ seq 1000000000 }}`, 0, KindLimit, "max_value_bytes"},
		{"repeat huge", `{{ repeat 1000000000 "ab" }}`, 0, KindLimit, "max_value_bytes"},
		{"repeat negative", `{{ repeat -1 "a" }}`, 0, KindTemplate, "repeat: negative count -1"},
		{"indent huge", `{{ indent 1000000000 "a\nb" }}`, 0, KindLimit, "max_value_bytes"},
		{"replace empty old", `{{ replace "" (repeat 100000 "x") (repeat 1000 "y") }}`, 0, KindLimit, "max_value_bytes"},
		{"regex expansion", `{{ regexReplaceAll "(a+)" (repeat 100000 "a") "$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1" }}`, 0, KindLimit, "max_value_bytes"},
		{"doubling cat", `{{ $x := "ab" }}{{ range until 64 }}{{ $x = cat $x $x }}{{ end }}{{ len $x }}`, 0, KindLimit, "max_value_bytes"},
		{"doubling list", `{{ $x := list 1 }}{{ range until 64 }}{{ $x = list $x $x }}{{ end }}{{ $x }}`, 0, KindLimit, "max_value_bytes"},
		{"cycle", `{{ $d := dict }}{{ $_ := set $d "a" $d }}{{ $d }}`, 0, KindLimit, "max_value_bytes"},
		{"printf width", `{{ range until 100 }}{{ printf "%999999d%[1]999999d%[1]999999d" 1 }}{{ end }}`, 1 << 20, KindLimit, "max_value_bytes (1 MiB)"},
		{"rendered text", `{{ range $.state.list }}` + strings.Repeat("x", 1000) + `{{ end }}`, 2000, KindLimit, "rendered text exceeds config.max_value_bytes (2 KB)"},
		{"nested range", `{{ range until 10000 }}{{ range until 10000 }}{{ end }}{{ end }}`, 1 << 40, "", "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := templateType{}
			prep, err := typ.Prepare(map[string]any{"template": tt.tmpl})
			if err != nil {
				t.Fatal(err)
			}
			// Limits must not depend on the deadline: only the deadline case
			// has a short one (a loaded machine is slow).
			timeout := time.Minute
			if tt.kind == "" {
				timeout = 200 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			_, err = typ.Run(ctx, &Invocation{With: map[string]any{}, Prepared: prep, Data: data, MaxValueBytes: tt.limit})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if err == nil {
				t.Fatal("rendered")
			}
			if tt.kind == "" {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want the deadline", err)
				}
				return
			}
			if KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (kind %q), want %s %q", err, KindOf(err), tt.kind, tt.want)
			}
		})
	}
}

// TestTemplateWithinLimits: ordinary use of the bounded functions is
// unchanged, and a pooled template renders again after a refusal.
func TestTemplateWithinLimits(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		{`{{ until 3 }}`, "[0 1 2]"},
		{`{{ until -2 }}`, "[0 -1]"},
		{`{{ untilStep 1 7 3 }}`, "[1 4]"},
		{`{{ seq 3 }}|{{ seq 5 3 }}|{{ seq 1 2 6 }}`, "1 2 3|5 4 3|1 3 5"},
		{`{{ repeat 3 "ab" }}`, "ababab"},
		{`{{ substr 1 3 "abcd" }}|{{ substr 5 2 "abc" }}|{{ substr 2 9 "abcd" }}|{{ substr -1 2 "abc" }}|{{ substr 4 9 "ab" }}`, "bc||cd|ab|"},
		{`{{ indent 2 "a\nb" }}{{ nindent 1 "c" }}`, "  a\n  b\n c"},
		{`{{ replace "a" "xy" "banana" }}`, "bxynxynxy"},
		{`{{ wrapWith 3 "|" "abcdef" }}`, "abc|def"},
		{`{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}`, "-W-xxW-"},
		{`{{ regexReplaceAllLiteral "a(x*)b" "-ab-" "${1}" }}`, "-${1}-"},
		{`{{ printf "%03d|%s" 7 "x" }}{{ print 1 2 }}{{ println "z" }}`, "007|x1 2z\n"},
		{`{{ toPrettyJson (dict "a" (list 1)) }}`, "{\n  \"a\": [\n    1\n  ]\n}"},
		{`{{ $x := "ab" }}{{ range until 10 }}{{ $x = cat $x $x }}{{ end }}{{ len $x }}`, "3071"},
	}
	for _, tt := range tests {
		prep, err := templateType{}.Prepare(map[string]any{"template": tt.tmpl})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := templateType{}.Run(context.Background(), &Invocation{With: map[string]any{}, Prepared: prep})
			if err != nil || got != tt.want {
				t.Errorf("%s = %q, %v; want %q", tt.tmpl, got, err, tt.want)
			}
		}
	}
	prep, _ := templateType{}.Prepare(map[string]any{"template": `{{ repeat .n "x" }}`})
	for _, n := range []int{100, 1 << 30, 100} {
		_, err := templateType{}.Run(context.Background(), &Invocation{Prepared: prep, Data: map[string]any{"n": n}, MaxValueBytes: 1000})
		if (err != nil) != (n > 1000) {
			t.Errorf("repeat %d: %v", n, err)
		}
	}
}
