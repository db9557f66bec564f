package spec

import (
	"regexp"
	"testing"

	"github.com/lgx-run/lgx/nodes"
)

// TestRetryOnKindsFromCatalog holds the three readers of `retry.on` — the
// decoder, the JSON Schema's pattern and the reference's text — to the
// one list of retryable kinds the catalog declares (nodes.RetryKinds).
func TestRetryOnKindsFromCatalog(t *testing.T) {
	re := regexp.MustCompile(retryOnPattern)
	retryable := map[nodes.Kind]bool{}
	for _, k := range nodes.RetryKinds {
		retryable[k] = true
	}
	tests := []struct {
		on   string
		want bool
	}{
		{"429", true}, {"5xx", true}, {"6xx", false}, {"42", false}, {"netw", false},
	}
	for _, k := range []nodes.Kind{nodes.KindNetwork, nodes.KindTimeout, nodes.KindStatus, nodes.KindSchema, nodes.KindTemplate,
		nodes.KindType, nodes.KindInput, nodes.KindExpr, nodes.KindPanic, nodes.KindProvider,
		nodes.KindCancelled, nodes.KindLimit, nodes.KindCassette, nodes.KindBudget} {
		tests = append(tests, struct {
			on   string
			want bool
		}{string(k), retryable[k]})
	}
	for _, tt := range tests {
		if got := validRetryOn(tt.on); got != tt.want {
			t.Errorf("validRetryOn(%q) = %v, want %v", tt.on, got, tt.want)
		}
		if got := re.MatchString(tt.on); got != tt.want {
			t.Errorf("schema pattern matches %q = %v, want %v", tt.on, got, tt.want)
		}
	}
	for _, k := range []nodes.Kind{nodes.KindCancelled, nodes.KindLimit, nodes.KindCassette, nodes.KindBudget} {
		if retryable[k] {
			t.Errorf("%s is retryable: retrying cannot cure it", k)
		}
	}
	b, _ := BlockByName(BlockRetry)
	for _, f := range b.Fields {
		if f.Name != "on" {
			continue
		}
		for _, k := range nodes.RetryKinds {
			if !regexp.MustCompile(`\b` + string(k) + `\b`).MatchString(f.Description) {
				t.Errorf("retry.on's description does not list %s: %s", k, f.Description)
			}
		}
	}
}
