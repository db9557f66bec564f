package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// UserConfig is the user's lgx config file (SPEC §9.9): pools and
// providers in the workflow syntax, shared by every workflow the user runs.
// Its pools are machine-wide: every lgx process of the user takes their
// slots and rate tokens from one store (Store, default the user's SQLite
// store), so their caps hold across processes.
type UserConfig struct {
	File   string // the config file's path
	Source []byte
	// Store is the store URL that holds the machine-wide pools' slots
	// ("" = the user's default SQLite store); a PostgreSQL URL makes the
	// pools span every machine that uses it.
	Store     string
	StorePos  Pos
	Pools     []*Pool
	Providers []*Provider
}

// userConfigKeys are the top-level keys of the config file.
var userConfigKeys = []string{"pools", "providers", "store"}

// UserConfigPath is where the user's config lives:
// $XDG_CONFIG_HOME/lgx/config.yaml, else ~/.config/lgx/config.yaml.
func UserConfigPath(getenv func(string) string) (string, error) {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "lgx", "config.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("user config location: set XDG_CONFIG_HOME: %w", err)
		}
	}
	return filepath.Join(home, ".config", "lgx", "config.yaml"), nil
}

// LoadUserConfig reads, loads and validates the config file at path. A
// missing file is no config: (nil, nil, nil). The error is only for I/O
// problems; what is wrong with the content is in the diagnostics, at the
// config file's line and column.
func LoadUserConfig(path string) (*UserConfig, Diagnostics, error) {
	src, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	c, ds := ParseUserConfig(path, src)
	return c, ds, nil
}

// ParseUserConfig loads and validates a config file's text with the
// workflow's decoder and checks for its `pools:` and `providers:`: the
// same keys, defaults and messages. A provider's pool and fallbacks must
// be declared in the config too (a config does not know the workflows that
// will use it).
func ParseUserConfig(file string, src []byte) (c *UserConfig, ds Diagnostics) {
	c = &UserConfig{File: file, Source: src}
	w := &Workflow{File: file, Source: src, Config: defaultConfig()}
	d := &decoder{w: w}
	defer func() {
		if r := recover(); r != nil {
			d.errorf(Pos{Line: 1, Col: 1}, CodeYAML, "", "internal error while loading the config (please report it): %v", r)
			ds = d.diags
		}
		ds.Sort()
	}()
	if len(src) > MaxFileSize {
		d.errorf(Pos{Line: 1, Col: 1}, CodeTooLarge, "", "file is larger than %d MiB", MaxFileSize>>20)
		return c, d.diags
	}
	w.lines = lineStarts(src)
	w.synthetic = map[*yaml.Node]bool{}
	if line := tooIndented(src); line > 0 {
		d.errorf(Pos{Line: line, Col: 1}, CodeTooLarge, "", "line is indented more than %d columns", MaxIndent)
		return c, d.diags
	}
	root, err := parseYAML(src)
	if err != nil {
		p := yamlErrorPos(src, err)
		d.errorf(p, CodeYAML, yamlErrorHint(src, p), "%s", yamlErrorMessage(err))
		return c, d.diags
	}
	if root == nil || len(root.Content) == 0 {
		return c, nil // an empty config declares nothing
	}
	if n, msg := checkLimits(root); n != nil {
		d.errorf(posOf(n), CodeTooLarge, "", "%s", msg)
		return c, d.diags
	}
	w.Root = root
	top := root.Content[0]
	if resolveAlias(top).Kind != yaml.MappingNode {
		if isNull(resolveAlias(top)) {
			return c, nil
		}
		d.errorf(posOf(top), CodeBadValue, "write `pools:` and `providers:` as in a workflow", "the lgx config must be a mapping, not %s", describe(top))
		return c, d.diags
	}
	o := d.object(top, "the lgx config", userConfigKeys)
	if v := o.get("store"); v != nil {
		c.Store, _ = d.str(v, "store")
		c.StorePos = posOf(v)
	}
	for _, p := range d.pairs(o.get("pools"), "pools") {
		d.pool(p)
	}
	for _, p := range d.pairs(o.get("providers"), "providers") {
		d.provider(p)
	}
	c.Pools, c.Providers = w.Pools, w.Providers
	// The workflow's checks of these sections, on the config alone. Once
	// marked with Config, the declarations are skipped by the checks of a
	// workflow they are applied to: they were checked here, and their
	// problems belong to this file.
	v := newValidator(w)
	v.checkPools()
	v.checkProviders()
	v.checkFallbacks()
	for _, p := range c.Pools {
		p.Config = file
	}
	for _, p := range c.Providers {
		p.Config = file
	}
	// The workflow's hints suggest declaring secrets, which a config
	// cannot: it reads the environment only.
	for i := range v.diags {
		switch {
		case v.diags[i].Code == CodeUnknownSecret:
			v.diags[i].Hint = "the config declares no secrets: read the variable with ${{ env.NAME }}"
		case strings.Contains(v.diags[i].Hint, "see only env and secrets"):
			v.diags[i].Hint = "provider fields of the config see only env"
		}
	}
	return c, append(d.diags, v.diags...)
}

// Apply adds the config's pools and providers that w names to w, so that
// the workflow may use them (validation, compilation and runs see them as
// declared). Only those it reaches are added (see reached): a provider of
// the config the workflow never calls must not fail its run for an unset
// key nor its money budget for a missing price, and an unnamed pool must
// not open the slot store. A name the workflow declares itself stays the
// workflow's: its pool is local to the run, and Apply returns a warning
// saying that it shadows the machine-wide one (see docs/decisions.md).
// Applying a nil config does nothing.
func (c *UserConfig) Apply(w *Workflow) Diagnostics {
	if c == nil || w == nil {
		return nil
	}
	usePools, useProviders := c.reached(w)
	var ds Diagnostics
	w.Pools = addReached(w.Pools, c.Pools, usePools, func(p *Pool) (string, string, Pos) { return p.Name, p.Config, p.Pos },
		func(own Pos, name string) Diagnostic {
			return Diagnostic{File: w.File, Pos: own, Severity: SeverityWarning, Code: CodeDuplicate,
				Hint:    "rename this pool to use the machine-wide one",
				Message: fmt.Sprintf("pool %s shadows the machine-wide pool %s of %s: this workflow's pool caps only its own run", name, name, c.File)}
		}, &ds)
	w.Providers = addReached(w.Providers, c.Providers, useProviders, func(p *Provider) (string, string, Pos) { return p.Name, p.Config, p.Pos },
		func(own Pos, name string) Diagnostic {
			return Diagnostic{File: w.File, Pos: own, Severity: SeverityWarning, Code: CodeDuplicate,
				Hint:    "rename this provider to use the one of the config",
				Message: fmt.Sprintf("provider %s shadows the provider %s of %s", name, name, c.File)}
		}, &ds)
	return ds
}

// addReached appends to own the declarations of cfg that use names, except
// those own declares itself: a workflow's own declaration shadows the
// config's, with the warning shadow builds (once per name, and not for a
// declaration an earlier Apply added from the config).
func addReached[T any](own, cfg []T, use map[string]bool, id func(T) (name, config string, pos Pos), shadow func(own Pos, name string) Diagnostic, ds *Diagnostics) []T {
	mine := make(map[string]T, len(own))
	for _, d := range own {
		name, _, _ := id(d)
		mine[name] = d
	}
	for _, d := range cfg {
		name, _, _ := id(d)
		if m, ok := mine[name]; ok {
			if _, config, pos := id(m); config == "" {
				*ds = append(*ds, shadow(pos, name))
			}
			continue
		}
		if use[name] {
			own = append(own, d)
		}
	}
	return own
}

// reached returns the names of the pools and providers w may use: the
// providers its llm_calls (tools' included) and its own providers name,
// with their fallbacks transitively, and the pools its nodes, tools, MCP
// servers and those providers take. An llm_call whose provider is not a
// literal may reach any provider.
func (c *UserConfig) reached(w *Workflow) (pools, providers map[string]bool) {
	pools, providers = map[string]bool{}, map[string]bool{}
	byName := map[string]*Provider{}
	for _, p := range c.Providers {
		byName[p.Name] = p
	}
	for _, p := range w.Providers { // the workflow's win, as in Apply
		byName[p.Name] = p
	}
	var queue []string
	nodes := append([]*Node(nil), w.Nodes...)
	for _, t := range w.Tools {
		if t.Node != nil {
			nodes = append(nodes, t.Node)
		}
	}
	for _, n := range nodes {
		for _, p := range n.Pools {
			pools[p.Value] = true
		}
		field := providerField(n)
		if field == "" {
			continue
		}
		if main := callProvider(n, field); main != "" {
			queue = append(queue, main)
		} else {
			for name := range byName {
				queue = append(queue, name)
			}
		}
	}
	for _, s := range w.MCP {
		pools[s.Pool.Value] = true
	}
	for _, p := range w.Providers {
		queue = append(queue, p.Name)
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		p := byName[name]
		if providers[name] || p == nil {
			continue
		}
		providers[name] = true
		pools[p.Pool.Value] = true
		for _, f := range p.Fallbacks {
			queue = append(queue, f.Value)
		}
	}
	return pools, providers
}
