package runner

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/spec"
)

// Fail closed (SPEC §9.6): a value the workflow says it needs but that
// comes out empty stops the run before anything runs (exit 2), rather than
// sending requests without a credential or to a default public endpoint.

// checkSecrets reports a declared secret that is unset or empty.
func checkSecrets(w *spec.Workflow, env map[string]any) error {
	for _, s := range w.Secrets {
		v, set := env[s.Value].(string)
		if v != "" {
			continue
		}
		state := "is not set"
		if set {
			state = "is empty"
		}
		return &InputError{Msg: fmt.Sprintf("secret %s %s (declared in %s:%d:%d); set the environment variable %s",
			s.Value, state, w.File, s.Pos.Line, s.Pos.Col, s.Value)}
	}
	return nil
}

// emptyProviderField reports a provider field written as an expression
// that came out empty: the run must not fall back to the SDK's default
// (the public endpoint, or a key from another variable) in its place. A
// field left out, or written as literal text, is what the user wrote.
func emptyProviderField(provider, field string, c cval, got string, env map[string]any) error {
	if got != "" || !isExpr(c) {
		return nil
	}
	var unset, empty []string
	for _, name := range envRefs(c) {
		v, set := env[name].(string)
		switch {
		case v != "" || slices.Contains(unset, "env."+name) || slices.Contains(empty, "env."+name):
		case set:
			empty = append(empty, "env."+name)
		default:
			unset = append(unset, "env."+name)
		}
	}
	var whys []string
	for _, g := range []struct {
		names []string
		state string
	}{{unset, "unset"}, {empty, "set but empty"}} {
		switch len(g.names) {
		case 0:
		case 1:
			whys = append(whys, g.names[0]+" is "+g.state)
		default:
			whys = append(whys, strings.Join(g.names, ", ")+" are "+g.state)
		}
	}
	why := strings.Join(whys, "; ")
	if why == "" {
		why = "its expression gave an empty string"
	}
	return &InputError{Msg: fmt.Sprintf("provider %s: %s is empty (%s)", provider, field, why)}
}

// isExpr reports whether a compiled value holds an expression.
func isExpr(c cval) bool {
	switch c.(type) {
	case *progVal, *interpVal:
		return true
	}
	return false
}

// envRe finds `env.NAME` and `env["NAME"]` in an expression's text.
var envRe = regexp.MustCompile(`\benv(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])`)

// envRefs lists the environment variables an expression names, in order.
func envRefs(c cval) []string {
	var srcs []string
	switch x := c.(type) {
	case *progVal:
		srcs = append(srcs, x.src)
	case *interpVal:
		for _, p := range x.parts {
			if pv, ok := p.(*progVal); ok {
				srcs = append(srcs, pv.src)
			}
		}
	}
	var names []string
	for _, src := range srcs {
		for _, m := range envRe.FindAllStringSubmatch(src, -1) {
			names = append(names, m[1]+m[2])
		}
	}
	return names
}
