package runner

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// A pool key may read a secret (a tenant's token, say); the wait event
// that names the busy key must redact it like every other event text.
func TestKeyedPoolWaitRedactsSecretKey(t *testing.T) {
	const secret = "tenant-secret-42"
	resetGroup("pks")
	rec := &eventLog{}
	res, err := runYAML(t, `
lgx: 1
name: t
secrets: [TENANT]
pools:
  tenant: {concurrency: 3, per_key: {concurrency: 1}}
state: {}
nodes:
  f:
    type: probe
    for_each: ${{ 1..3 }}
    pool: {name: tenant, key: "${{ secrets.TENANT }}"}
    with: {sleep_ms: 20, group: pks}
edges:
  - {from: START, to: f}
`, nil, func(o *Options) { o.Sink = rec; o.Environ = []string{"TENANT=" + secret} })
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("run: %v %v", err, res)
	}
	waits := rec.named(EventWait)
	if len(waits) == 0 {
		t.Fatal("no wait event: items of one key did not contend")
	}
	for _, e := range rec.events {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), secret) {
			t.Errorf("event leaks the secret: %s", b)
		}
	}
	if w := waits[0].Waiting; w != "pool tenant key ***" {
		t.Errorf("waiting = %q, want %q", w, "pool tenant key ***")
	}
}
