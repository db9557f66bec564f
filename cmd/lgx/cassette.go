package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// cassetteFlags are run's --record and --replay.
type cassetteFlags struct {
	record, replay string
}

// open opens the cassette the flags name, or returns nil when neither is
// set. Secrets come from the workflow and the process environment.
func (f cassetteFlags) open(wf *spec.Workflow) (*cassette.Cassette, error) {
	switch {
	case f.record != "" && f.replay != "":
		return nil, usageErrf("--record and --replay cannot be used together")
	case f.record != "":
		c, err := cassette.Open(f.record, cassette.Record, cassette.Secrets(wf, os.Environ()))
		if err != nil {
			return nil, usageErr(err)
		}
		return c, nil
	case f.replay != "":
		c, err := cassette.Open(f.replay, cassette.Replay, cassette.Secrets(wf, os.Environ()))
		if err != nil {
			return nil, usageErr(err)
		}
		return c, nil
	}
	return nil, nil
}

// forEngine is what a run on the engine's workers does with its
// requests. The --replay cassette is checked as a local replay opens it,
// with the same errors, and its content returned to be recorded with the
// run (the workers do not share this file system). The --record file is
// checked writable before the run starts, as locally; the workers record
// the requests, and this process writes the file (writeRecorded).
func (f cassetteFlags) forEngine(wf *spec.Workflow) (runner.EngineCassette, error) {
	c, err := f.open(wf)
	if err != nil || c == nil {
		return runner.EngineCassette{}, err
	}
	if f.record != "" {
		// Not closed: the recorder would write an empty file.
		return runner.EngineCassette{Record: true}, nil
	}
	data, err := os.ReadFile(f.replay)
	if err != nil {
		return runner.EngineCassette{}, usageErr(fmt.Errorf("cassette %s: %w", f.replay, err))
	}
	return runner.EngineCassette{Replay: &runner.ReplayCassette{Path: f.replay, Data: data}}, nil
}

// writeRecorded writes the --record file of run runID on the engine from
// the requests its workers recorded; runErr, the run's outcome, wins over
// a failure to write it.
func writeRecorded(ctx context.Context, st store.Store, runID, path string, runErr error) error {
	docs, err := runner.RecordedRequests(context.WithoutCancel(ctx), st, runID)
	if err == nil {
		err = cassette.WriteFile(path, docs)
	}
	if err != nil && runErr == nil {
		return err
	}
	return runErr
}

// wrapCassette routes client through c (nil: client as is).
func wrapCassette(c *cassette.Cassette, client *http.Client) *http.Client {
	if c == nil {
		return client
	}
	return c.Wrap(client)
}

// closeCassette writes a recorded cassette; runErr, the run's outcome,
// wins over a failure to write it.
func closeCassette(c *cassette.Cassette, runErr error) error {
	if c == nil {
		return runErr
	}
	if err := c.Close(); err != nil && runErr == nil {
		return err
	}
	return runErr
}
