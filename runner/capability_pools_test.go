package runner

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes"
)

// serverUser is a test type that names an MCP server in `with.via`, as
// mcp_call does in `with.server`: the runner must give it the server's
// pool and timeout because of the capability, not the type's name.
type serverUser struct{}

func init() { nodes.Register(serverUser{}) }

func (serverUser) Name() string { return "test_server_user" }
func (serverUser) Doc() nodes.Doc {
	return nodes.Doc{Summary: "test", With: []nodes.Field{{Name: "via", Type: "string", Static: true}}}
}
func (serverUser) Capabilities() nodes.Capabilities { return nodes.Capabilities{ServerField: "via"} }
func (serverUser) Run(context.Context, *nodes.Invocation) (any, error) {
	return nil, nil
}

func TestServerFieldTakesServerPoolAndTimeout(t *testing.T) {
	g := compileYAML(t, `lgx: 1
name: t
pools:
	own: {concurrency: 1}
	mp: {concurrency: 1}
mcp:
	s: {command: x, pool: mp, timeout: 7s}
state: {}
nodes:
	named: {type: test_server_user, pool: own, with: {via: s}}
	timed: {type: test_server_user, timeout: 2s, with: {via: s}}
	plain: {type: probe, pool: own}
edges:
	- {from: START, to: [named, timed, plain]}
`)
	tests := []struct {
		node    string
		pools   []string
		timeout time.Duration
	}{
		{"named", []string{"mp", "own"}, 7 * time.Second},
		{"timed", []string{"mp"}, 2 * time.Second}, // its own timeout wins
		{"plain", []string{"own"}, -1},
	}
	for _, tt := range tests {
		n := g.nodes[g.byName[tt.node]]
		if !slices.Equal(n.poolNames, tt.pools) {
			t.Errorf("%s takes pools %v, want %v", tt.node, n.poolNames, tt.pools)
		}
		if tt.timeout >= 0 && n.timeout != tt.timeout {
			t.Errorf("%s timeout = %v, want %v", tt.node, n.timeout, tt.timeout)
		}
	}
}
