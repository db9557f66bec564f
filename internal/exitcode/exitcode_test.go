package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// TestRun: how a run ends, as its result and error, gives the exit code
// SPEC §7 names; the same code the CLI exits with and `lgx test` compares
// a case's `exit:` against.
func TestRun(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		res  *runner.Result
		err  error
		code int
	}{
		{"completed", &runner.Result{Status: store.StatusCompleted}, nil, OK},
		{"no result, no error", nil, nil, OK},
		{"interrupted", &runner.Result{Status: store.StatusInterrupted}, nil, Interrupted},
		{"cancelled", &runner.Result{Status: store.StatusCancelled}, nil, Cancelled},
		{"failed without an error", &runner.Result{Status: store.StatusFailed}, nil, Failed},
		{"failed", &runner.Result{Status: store.StatusFailed}, boom, Failed},
		{"refused input, nothing ran", nil, &runner.InputError{Msg: "x"}, Usage},
		{"invalid child workflow", nil, fmt.Errorf("subgraph: %w", &runner.InvalidWorkflowError{File: "c.yaml"}), Usage},
		{"owned by a live process", nil, &store.LeaseError{RunID: "R"}, Usage},
		{"cancelled before the end", nil, fmt.Errorf("step 2: %w", runner.ErrCancelled), Cancelled},
		{"an error of no kind", nil, errors.New("disk full"), Failed},
	}
	for _, tt := range tests {
		if got := Run(tt.res, tt.err); got != tt.code {
			t.Errorf("%s: Run = %d, want %d", tt.name, got, tt.code)
		}
	}
}

// TestCodes: the codes SPEC §7 gives, so that the constants cannot drift.
func TestCodes(t *testing.T) {
	for name, c := range map[string][2]int{
		"ok": {OK, 0}, "failed": {Failed, 1}, "usage": {Usage, 2}, "interrupted": {Interrupted, 3}, "cancelled": {Cancelled, 130},
	} {
		if c[0] != c[1] {
			t.Errorf("%s = %d, SPEC §7 says %d", name, c[0], c[1])
		}
	}
}
