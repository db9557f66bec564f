package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/llmtest"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txtar")

// TestMain lets the test binary act as the lgx command inside scripts, so
// every script exercises the real command line, exit codes and streams.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"lgx": func() { os.Exit(Main()) },
	})
}

// TestScripts runs the user sessions in testdata/*.txtar.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup:               scriptEnv,
		Cmds:                scriptCmds(),
	})
}

// scriptEnv gives each script its own store and a plain (non-terminal)
// environment, whatever the developer's shell has, $WORKFLOWS, and the
// registries of the test servers its commands start.
func scriptEnv(env *testscript.Env) error {
	env.Setenv("LGX_HOME", filepath.Join(env.WorkDir, ".lgx"))
	env.Setenv("NO_COLOR", "1")
	env.Setenv("CI", "true")
	env.Setenv("HOME", env.WorkDir)
	workflows, err := filepath.Abs("../../workflows")
	if err != nil {
		return err
	}
	env.Setenv("WORKFLOWS", workflows)
	env.Values["docservers"] = map[string]*docServer{}
	env.Values["payservers"] = map[string]*payServer{}
	env.Values["llmservers"] = map[string]*llmtest.Server{}
	return nil
}
