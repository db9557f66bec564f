package cassette

import (
	"regexp"
	"strings"

	"github.com/lgx-run/lgx/spec"
)

// providerKeyEnv are the variables the LLM providers read their key from
// when a provider names none (SPEC §5.2).
var providerKeyEnv = []string{"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}

// envRef finds the variables an api_key expression reads.
var envRef = regexp.MustCompile(`\b(?:env|secrets)\.([A-Za-z_][A-Za-z0-9_]*)`)

// Secrets returns the values a cassette of wf must never contain: the
// workflow's declared secrets, its providers' keys and the providers'
// default key variables, read from environ (KEY=VALUE pairs).
func Secrets(wf *spec.Workflow, environ []string) []string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var out []string
	add := func(name string) {
		if v := env[name]; v != "" {
			out = append(out, v)
		}
	}
	for _, s := range wf.Secrets {
		add(s.Value)
	}
	for _, p := range wf.Providers {
		for _, m := range envRef.FindAllStringSubmatch(p.APIKey, -1) {
			add(m[1])
		}
	}
	for _, name := range providerKeyEnv {
		add(name)
	}
	return out
}
