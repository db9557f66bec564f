package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// userConfig is the user's config file (SPEC §9.9), loaded once per
// process: nil when there is none. Its diagnostics are at the config
// file's line:col; the error is for a file that exists but cannot be read.
var userConfig = sync.OnceValues(func() (*userConfigLoad, error) {
	path, err := spec.UserConfigPath(os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, ds, err := spec.LoadUserConfig(path)
	if err != nil {
		return nil, fmt.Errorf("user config: %w", err)
	}
	return &userConfigLoad{cfg: cfg, diags: ds}, nil
})

type userConfigLoad struct {
	cfg   *spec.UserConfig
	diags spec.Diagnostics
}

// applyUserConfig adds the config's pools and providers to wf and returns
// the config's diagnostics and the shadowing warnings.
func applyUserConfig(wf *spec.Workflow) (spec.Diagnostics, error) {
	l, err := userConfig()
	if err != nil {
		return nil, err
	}
	if l.cfg == nil {
		return nil, nil
	}
	// Applied even when the config has errors (which fail the command
	// anyway), so that the workflow's diagnostics are not doubled by its
	// references to the config's pools.
	return append(append(spec.Diagnostics(nil), l.diags...), l.cfg.Apply(wf)...), nil
}

// machinePools opens the store of the config's pools when wf uses any
// (it was applied the config): nil when it uses none. closeFn, to call
// after the run, releases the slots the process still holds and closes
// the store.
func machinePools(ctx context.Context, wf *spec.Workflow) (m *runner.MachinePools, closeFn func() error, err error) {
	none := func() error { return nil }
	l, err := userConfig()
	if err != nil || l.cfg == nil || wf == nil {
		return nil, none, err
	}
	uses := false
	for _, p := range wf.Pools {
		uses = uses || p.Config != ""
	}
	if !uses {
		return nil, none, nil
	}
	return openMachinePools(ctx, l.cfg)
}

// openSlotStore opens the store the config names for its pools' slots:
// its `store:` URL (a relative sqlite:PATH is relative to the config's
// directory), else the user's default SQLite store.
func openSlotStore(ctx context.Context, cfg *spec.UserConfig) (store.Store, error) {
	url := cfg.Store
	if url == "" {
		path, err := store.DefaultPath()
		if err != nil {
			return nil, err
		}
		url = "sqlite:" + path
	} else if p, ok := strings.CutPrefix(url, "sqlite:"); ok && p != "" && !strings.HasPrefix(p, "//") && !filepath.IsAbs(p) {
		url = "sqlite:" + filepath.Join(filepath.Dir(cfg.File), p)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s:%d:%d: store of the machine-wide pools: %w", cfg.File, cfg.StorePos.Line, cfg.StorePos.Col, err)
	}
	return st, nil
}

// configOf is the user config (nil when none), for commands that read a
// recorded run whose workflow may name the config's pools and providers.
func configOf() (*spec.UserConfig, error) {
	l, err := userConfig()
	if err != nil || l == nil {
		return nil, err
	}
	return l.cfg, nil
}

// workerMachinePools opens the store of the config's pools for a worker,
// which may run any workflow: nil when the config declares no pool.
func workerMachinePools(ctx context.Context) (m *runner.MachinePools, closeFn func() error, err error) {
	none := func() error { return nil }
	l, err := userConfig()
	if err != nil || l == nil || l.cfg == nil || len(l.cfg.Pools) == 0 {
		return nil, none, err
	}
	if l.diags.HasErrors() {
		return nil, none, fmt.Errorf("user config %s has errors (lgx validate reports them at their line and column)", l.cfg.File)
	}
	return openMachinePools(ctx, l.cfg)
}

// openMachinePools serves cfg's pools from the store its `store:` names.
func openMachinePools(ctx context.Context, cfg *spec.UserConfig) (*runner.MachinePools, func() error, error) {
	st, err := openSlotStore(ctx, cfg)
	if err != nil {
		return nil, func() error { return nil }, err
	}
	leaser, ok := st.(store.SlotLeaser)
	if !ok {
		st.Close()
		return nil, func() error { return nil }, fmt.Errorf("%s: store %s cannot hold machine-wide pools; use sqlite:PATH or postgres://…", cfg.File, cfg.Store)
	}
	m := runner.NewMachinePools(cfg, leaser)
	return m, func() error {
		err := m.Close()
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}
