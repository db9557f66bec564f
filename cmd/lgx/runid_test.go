package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// announceProbe is stderr for an in-process `lgx run`: the moment the
// "run ID" line is written, it asks the store (a connection of its own)
// whether it knows the run — what a user who kills lgx right then gets.
type announceProbe struct {
	t      *testing.T
	dbPath string

	mu      sync.Mutex
	buf     bytes.Buffer
	id      string
	known   bool
	lookErr error
}

var announceLine = regexp.MustCompile(`(?m)^run ([0-9A-Z]{26})$`)

func (p *announceProbe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.Write(b)
	if p.id != "" {
		return len(b), nil
	}
	m := announceLine.FindSubmatch(p.buf.Bytes())
	if m == nil {
		return len(b), nil
	}
	p.id = string(m[1])
	st, err := store.Open(context.Background(), "sqlite:"+p.dbPath)
	if err != nil {
		p.lookErr = err
		return len(b), nil
	}
	defer st.Close()
	_, err = st.GetRun(context.Background(), p.id)
	p.known, p.lookErr = err == nil, err
	return len(b), nil
}

// The run id is printed only once the store has recorded the run, so that
// `runs show ID` and `resume ID` know every id lgx printed: for a run that
// completes, one that fails at its first node, and none for a run refused
// before it started.
func TestRunIDPrintedOnceRecorded(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.yaml", `lgx: 1
name: ok
state:
  x: {type: integer, default: 0}
nodes:
  a: {type: set, output: {x: 1}}
edges:
  - {from: START, to: a}
  - {from: a, to: END}
`)
	fail := write("fail.yaml", `lgx: 1
name: fail
state:
  x: {type: integer, default: 0}
  need: {type: string}
nodes:
  a: {type: set, output: {x: "${{ 'not a number' }}"}}
edges:
  - {from: START, to: a}
  - {from: a, to: END}
`)
	tests := []struct {
		name      string
		args      []string
		code      int
		announced bool
	}{
		{"completed", []string{"run", ok}, exitOK, true},
		{"fails at its first node", []string{"run", fail}, exitFailed, true},
		{"refused before it starts", []string{"run", fail, "-i", "nope=1"}, exitUsage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "runs.db")
			probe := &announceProbe{t: t, dbPath: db}
			args := append(tt.args, "--store", "sqlite:"+db, "--progress", "plain")
			code := execute(t.Context(), args, &IOStreams{Out: &bytes.Buffer{}, Err: probe, Width: 80,
				Getenv: func(string) string { return "" }})
			probe.mu.Lock()
			defer probe.mu.Unlock()
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, probe.buf.String())
			}
			if !tt.announced {
				if probe.id != "" || strings.Contains(probe.buf.String(), "resume") {
					t.Errorf("a run that never started was announced:\n%s", probe.buf.String())
				}
				return
			}
			if probe.id == "" {
				t.Fatalf("no run id on stderr:\n%s", probe.buf.String())
			}
			if !probe.known {
				t.Errorf("run %s printed before the store recorded it (%v)", probe.id, probe.lookErr)
			}
			out := probe.buf.String()
			if i, j := strings.Index(out, "run "+probe.id+"\n"), strings.Index(out, " start "); j < 0 || i > j {
				t.Errorf("the run line should come before the run's progress:\n%s", out)
			}
		})
	}
}
