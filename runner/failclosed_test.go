package runner

import (
	"errors"
	"testing"
)

// TestFailClosed: a declared secret that is unset or empty, and a provider
// field whose expression comes out empty, stop the run before any node
// runs, as input errors (exit 2), naming what is missing (SPEC §9.6).
func TestFailClosed(t *testing.T) {
	tests := []struct {
		name      string
		secrets   string
		providers string
		environ   []string
		want      string // "" = the run completes
	}{
		{name: "secret unset", secrets: "secrets: [TOKEN]", environ: []string{},
			want: "secret TOKEN is not set (declared in test.yaml:4:11); set the environment variable TOKEN"},
		{name: "secret empty", secrets: "secrets: [A, TOKEN]", environ: []string{"A=1", "TOKEN="},
			want: "secret TOKEN is empty (declared in test.yaml:4:14); set the environment variable TOKEN"},
		{name: "secrets set", secrets: "secrets: [TOKEN]", environ: []string{"TOKEN=t"}},
		{name: "base_url from an unset variable",
			providers: `{default: {kind: openai, model: m, base_url: "${{ env.LLM_BASE_URL }}"}}`,
			environ:   []string{"OPENAI_API_KEY=k"},
			want:      "provider default: base_url is empty (env.LLM_BASE_URL is unset)"},
		{name: "base_url from a variable set empty",
			providers: `{default: {kind: openai, model: m, base_url: "${{ env.LLM_BASE_URL }}"}}`,
			environ:   []string{"LLM_BASE_URL="},
			want:      "provider default: base_url is empty (env.LLM_BASE_URL is set but empty)"},
		{name: "several variables",
			providers: `{local: {kind: openai, model: "${{ env['M1'] }}${{ env.M2 }}", base_url: "http://127.0.0.1:1/v1"}}`,
			environ:   []string{},
			want:      "provider local: model is empty (env.M1, env.M2 are unset)"},
		{name: "an empty expression without variables",
			providers: `{default: {kind: openai, model: m, base_url: "${{ '' }}"}}`,
			environ:   []string{},
			want:      "provider default: base_url is empty (its expression gave an empty string)"},
		{name: "api_key from an unset variable does not fall back to OPENAI_API_KEY",
			providers: `{default: {kind: openai, model: m, api_key: "${{ env.MY_KEY }}"}}`,
			environ:   []string{"OPENAI_API_KEY=k"},
			want:      "provider default: api_key is empty (env.MY_KEY is unset)"},
		{name: "a default the user wrote",
			providers: `{default: {kind: openai, model: m, base_url: "${{ env.LLM_BASE_URL ?? 'http://127.0.0.1:1/v1' }}"}}`,
			environ:   []string{}},
		{name: "fields left out keep the SDK defaults",
			providers: `{default: {kind: openai, model: m}}`,
			environ:   []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := resetGroup("failclosed")
			providers := ""
			if tt.providers != "" {
				providers = "providers: " + tt.providers
			}
			_, err := runYAML(t, `
lgx: 1
name: t
`+tt.secrets+`
`+providers+`
state:
  v: integer
nodes:
  a:
    type: probe
    with: {value: 1, group: failclosed}
    output: {v: "${{ result }}"}
edges:
  - {from: START, to: a}
`, nil, func(o *Options) { o.Environ = tt.environ })
			if tt.want == "" {
				if err != nil || g.calls != 1 {
					t.Fatalf("err = %v, %d calls; want a completed run", err, g.calls)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || ie.Msg != tt.want {
				t.Fatalf("err = %v, want the input error %q", err, tt.want)
			}
			if g.calls != 0 {
				t.Errorf("%d invocations ran, want none", g.calls)
			}
		})
	}
}
