package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const userConfigSrc = `store: sqlite:/tmp/slots.db
pools:
  llm: {concurrency: 3, rate: 10/s, burst: 2}
providers:
  main: {kind: openai, model: gpt-4o-mini, base_url: "${{ env.LLM_URL }}", pool: llm}
`

func TestParseUserConfig(t *testing.T) {
	c, ds := ParseUserConfig("/home/u/.config/lgx/config.yaml", []byte(userConfigSrc))
	if len(ds) > 0 {
		t.Fatalf("diagnostics: %v", ds)
	}
	if c.Store != "sqlite:/tmp/slots.db" || len(c.Pools) != 1 || len(c.Providers) != 1 {
		t.Fatalf("config = %+v", c)
	}
	p := c.Pools[0]
	if p.Name != "llm" || p.Concurrency != 3 || p.Rate.PerSecond() != 10 || p.Burst != 2 || p.Config != c.File || p.Pos.Line != 3 {
		t.Errorf("pool = %+v", p)
	}
	if pr := c.Providers[0]; pr.Pool.Value != "llm" || pr.Config != c.File {
		t.Errorf("provider = %+v", pr)
	}
}

// Problems in the config are reported at the config file's line:col, with
// the workflow's messages.
func TestParseUserConfigErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", "pool:\n  llm: {concurrency: 1}\n", `config.yaml:1:1: error: unknown key "pool"`},
		{"bad rate", "pools:\n  llm: {concurrency: 1, rate: fast}\n", "config.yaml:2:31: error: pool llm:"},
		{"bad concurrency", "pools:\n  llm: {concurrency: 0}\n", "config.yaml:2:22: error:"},
		{"unknown pool", "providers:\n  m: {kind: openai, pool: lmm}\n", `config.yaml:2:27: error: provider m: unknown pool "lmm"`},
		{"unknown fallback", "providers:\n  m: {kind: openai, fallbacks: [b]}\n", `unknown fallback provider "b"`},
		{"bad kind", "providers:\n  m: {kind: opneai}\n", `unknown kind "opneai"`},
		{"bad pool name", "pools:\n  my-pool: {concurrency: 1}\n", "config.yaml:2:3: error:"},
		{"not a mapping", "- a\n", "the lgx config must be a mapping"},
		{"yaml", "pools: {\n", "config.yaml:"},
		{"caps nothing", "pools:\n  p: {}\n", "config.yaml:2:3: warning: pool p caps nothing"},
		{"store not a string", "store: [a]\n", "config.yaml:1:8: error:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ds := ParseUserConfig("config.yaml", []byte(tt.src))
			var all []string
			for _, d := range ds {
				all = append(all, d.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Errorf("diagnostics = %q, want one containing %q", all, tt.want)
			}
		})
	}
}

func TestParseUserConfigEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "~\n"} {
		c, ds := ParseUserConfig("c.yaml", []byte(src))
		if len(ds) > 0 || c == nil || len(c.Pools) != 0 {
			t.Errorf("ParseUserConfig(%q) = %+v, %v", src, c, ds)
		}
	}
}

func TestLoadUserConfig(t *testing.T) {
	dir := t.TempDir()
	c, ds, err := LoadUserConfig(filepath.Join(dir, "missing.yaml"))
	if c != nil || ds != nil || err != nil {
		t.Errorf("missing file = %v, %v, %v; want no config", c, ds, err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(userConfigSrc), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, ds, err := LoadUserConfig(path); err != nil || len(ds) > 0 || c.File != path || len(c.Pools) != 1 {
		t.Errorf("LoadUserConfig = %+v, %v, %v", c, ds, err)
	}
	if _, _, err := LoadUserConfig(dir); err == nil {
		t.Error("LoadUserConfig of a directory succeeded")
	}
}

func TestUserConfigPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if p, _ := UserConfigPath(env(map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"})); p != "/x/lgx/config.yaml" {
		t.Errorf("with XDG_CONFIG_HOME: %s", p)
	}
	if p, _ := UserConfigPath(env(map[string]string{"HOME": "/h"})); p != "/h/.config/lgx/config.yaml" {
		t.Errorf("without XDG_CONFIG_HOME: %s", p)
	}
}

// A workflow that names a config pool or provider validates once the
// config is applied; one that declares the same name keeps its own, with
// a warning.
func TestUserConfigApply(t *testing.T) {
	const wf = `lgx: 1
name: t
%s
edges:
  - {from: START, to: a}
  - {from: START, to: b}
nodes:
  a: {type: http_fetch, with: {url: "http://127.0.0.1/"}, pool: llm}
  b: {type: llm_call, with: {provider: main, prompt: hi}}
`
	cfg, ds := ParseUserConfig("config.yaml", []byte(userConfigSrc))
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	tests := []struct {
		name, decl string
		cfg        *UserConfig
		want       string // substring of the diagnostics; "" = clean
		machine    bool   // pool llm is the config's
	}{
		{"config pool", "", cfg, "", true},
		{"no config", "", nil, `unknown pool "llm"`, false},
		{"shadowed", "pools: {llm: {concurrency: 1}}", cfg, "warning: pool llm shadows the machine-wide pool llm of config.yaml", false},
		{"shadowed provider", "providers: {main: {kind: anthropic}}", cfg, "warning: provider main shadows the provider main of config.yaml", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ds := Load("wf.yaml", []byte(strings.Replace(wf, "%s", tt.decl, 1)))
			ds = append(ds, tt.cfg.Apply(w)...)
			ds = append(ds, Validate(w)...)
			var all []string
			for _, d := range ds {
				all = append(all, d.String())
			}
			got := strings.Join(all, "\n")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("diagnostics = %q, want %q", got, tt.want)
			}
			var machine bool
			for _, p := range w.Pools {
				if p.Name == "llm" {
					machine = p.Config != ""
				}
			}
			if machine != tt.machine {
				t.Errorf("pool llm machine-wide = %v, want %v", machine, tt.machine)
			}
		})
	}
}

func FuzzParseUserConfig(f *testing.F) {
	f.Add([]byte(userConfigSrc))
	f.Add([]byte("pools: {a: {per_key: {rate: 1/s}}}\nproviders: {x: {kind: openai, fallbacks: [x]}}"))
	f.Add([]byte("store: 1\n---\nb: 2"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, _ := ParseUserConfig("c.yaml", src)
		if c == nil {
			t.Fatal("nil config")
		}
		w, _ := Load("w.yaml", []byte("lgx: 1\nname: w\nnodes: {}\n"))
		c.Apply(w)
	})
}

// Apply adds only the config's pools and providers the workflow reaches:
// a provider its llm_calls name (and their fallbacks, transitively), the
// pools its nodes, tools, MCP servers and providers name. An unrelated
// provider of the config (an unset key, no price) must not make the
// workflow invalid, nor its run fail, nor an unrelated pool open the
// slot store.
func TestUserConfigApplyOnlyReached(t *testing.T) {
	const cfgSrc = `pools:
  llm: {concurrency: 3}
  backup_pool: {concurrency: 1}
  web: {concurrency: 2}
  mcp_pool: {concurrency: 1}
  unused_pool: {concurrency: 1}
providers:
  main: {kind: openai, model: m, pool: llm, fallbacks: [backup], price: {input_per_mtok: 1, output_per_mtok: 1}}
  backup: {kind: openai, model: m, pool: backup_pool, price: {input_per_mtok: 1, output_per_mtok: 1}}
  unpriced: {kind: openai, model: m, api_key: "${{ env.NOT_SET }}", pool: unused_pool}
`
	cfg, ds := ParseUserConfig("config.yaml", []byte(cfgSrc))
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	tests := []struct {
		name, body       string
		pools, providers []string
	}{
		{"nothing named", `config: {budget: {usd: 1}}
nodes:
  a: {type: set}
edges: [{from: START, to: a}]`, nil, nil},
		{"llm_call and its fallbacks", `config: {budget: {usd: 1}}
nodes:
  a: {type: llm_call, with: {provider: main, prompt: hi}}
edges: [{from: START, to: a}]`, []string{"llm", "backup_pool"}, []string{"main", "backup"}},
		{"node, tool and mcp pools", `tools:
  t:
    parameters: {type: object}
    node: {type: http_fetch, with: {url: "http://127.0.0.1/"}, pool: web}
mcp:
  s: {command: x, pool: mcp_pool}
nodes:
  a: {type: set, pool: [web]}
edges: [{from: START, to: a}]`, []string{"web", "mcp_pool"}, nil},
		{"own provider falls back to the config's", `providers:
  mine: {kind: openai, model: m, fallbacks: [backup]}
nodes:
  a: {type: llm_call, with: {provider: mine, prompt: hi}}
edges: [{from: START, to: a}]`, []string{"backup_pool"}, []string{"backup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ds := Load("wf.yaml", []byte("lgx: 1\nname: t\n"+tt.body+"\n"))
			ds = append(ds, cfg.Apply(w)...)
			ds = append(ds, Validate(w)...)
			for _, d := range ds {
				if d.Severity == SeverityError {
					t.Errorf("diagnostic: %s", d)
				}
			}
			var pools, providers []string
			for _, p := range w.Pools {
				if p.Config != "" {
					pools = append(pools, p.Name)
				}
			}
			for _, p := range w.Providers {
				if p.Config != "" {
					providers = append(providers, p.Name)
				}
			}
			if !slices.Equal(pools, tt.pools) || !slices.Equal(providers, tt.providers) {
				t.Errorf("config pools %v, providers %v; want %v, %v", pools, providers, tt.pools, tt.providers)
			}
		})
	}
}

// The config declares no secrets: its hints say to read env instead of
// suggesting a `secrets:` it cannot have.
func TestUserConfigSecretHints(t *testing.T) {
	_, ds := ParseUserConfig("config.yaml", []byte("providers:\n  p: {kind: openai, api_key: \"${{ secrets.KEY }}\", model: \"${{ state.x }}\"}\n"))
	if len(ds) != 2 {
		t.Fatalf("diagnostics %q, want 2", ds)
	}
	for _, d := range ds {
		if strings.Contains(d.Hint, "secrets:") && !strings.Contains(d.Hint, "declares no secrets") || strings.Contains(d.Hint, "and secrets") || !strings.Contains(d.Hint, "env") {
			t.Errorf("%s: hint %q, want one saying the config reads env only", d, d.Hint)
		}
	}
}
