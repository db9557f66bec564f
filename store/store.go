// Package store records runs durably: the workflow text and inputs, each
// node invocation's writes the moment it finishes, and a checkpoint of the
// keys that changed at every step boundary. The executor talks to it only
// through Store, so a server-backed store can drop in later.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned for an unknown run id.
var ErrNotFound = errors.New("run not found")

// Status of a run.
type Status string

// Run statuses.
const (
	StatusRunning     Status = "running"
	StatusCompleted   Status = "completed"
	StatusFailed      Status = "failed"
	StatusCancelled   Status = "cancelled"
	StatusInterrupted Status = "interrupted"
	// StatusStale is never stored: GetRun and ListRuns report it for a
	// run recorded as running whose owner died (SPEC §9.3: same host, its
	// pid is gone; otherwise its lease expired). Such a run is resumable
	// at once.
	StatusStale Status = "stale"
)

// Resumable reports whether `lgx resume` may continue a run in this status.
// A "running" run may be resumed only once its owner is gone (stale);
// AcquireLease decides that atomically.
func (s Status) Resumable() bool { return s != StatusCompleted }

// Run is one recorded run.
type Run struct {
	ID        string
	Workflow  string // the workflow's name
	File      string // path the workflow was loaded from
	Source    []byte // the workflow text, so resume runs what was started
	Inputs    json.RawMessage
	Status    Status
	Error     string
	StartedAt time.Time
	EndedAt   time.Time // zero while running
	// Subgraphs holds the text of every workflow the run can call as a
	// subgraph, keyed by its path as resolved when the run started (SPEC
	// §9.2), so resume runs what was started, from any directory.
	Subgraphs map[string][]byte
	// Lease is the run's current owner claim; nil when none (SPEC §9.3).
	Lease *Lease
	// InputValues, when given, are Inputs' top-level values, by key, as
	// Inputs holds them. The run's first checkpoint repeats the inputs in
	// the state's keys: a store may keep such a value as a reference to
	// Inputs rather than a second copy (sqlite_delta.go). Not stored;
	// ignored when it does not match Inputs.
	InputValues map[string]json.RawMessage
}

// Invocation status.
const (
	InvocationOK          = "ok"          // finished; Writes are final
	InvocationFailed      = "failed"      // failed and failed the run
	InvocationContinued   = "continued"   // failed with on_error: continue; Writes are final
	InvocationInterrupted = "interrupted" // paused at an interrupt node
	// InvocationAnswered is an answer to an interrupt, recorded by a
	// resume for an engine that runs the interrupt again elsewhere (its
	// Path is the interrupt's path + "@" + a nonce; Writes the answer);
	// InvocationRefused an answer the engine refused (a second answer).
	InvocationAnswered = "answered"
	InvocationRefused  = "refused"
)

// Invocation is one finished node invocation (or one for_each item, tool
// call or subgraph child invocation). Its identity is (RunID, Path): the
// path names it uniquely within the run (SPEC §9.1), e.g. "3/charge[4]",
// "5/tools/tool:call_1" or "3/approve_each[1]/2/charge[4]". Step is the
// top-level step the path starts with; Node and Index (-1 without
// for_each) are the invocation's own node and item, for display. A record
// with an empty Path gets the path of (Step, Node, Index).
type Invocation struct {
	RunID     string
	Path      string
	Step      int
	Node      string
	Index     int
	Status    string
	Writes    json.RawMessage // JSON object: state key -> value written, in output order
	Error     string
	ErrorKind string
	Attempts  int
	StartedAt time.Time
	EndedAt   time.Time
}

// Checkpoint is written at the end of each step, after its writes were
// applied. It holds only the keys that changed, so the store grows with
// what was written, not with state size times steps.
type Checkpoint struct {
	RunID   string
	Step    int
	Changed map[string]json.RawMessage // key -> new value
	// Extended holds changed keys given as what was added to their
	// previous value (extension.go), for a store that WritesExtensions;
	// a key is in Changed or in Extended, not both. Readers get every
	// value in Changed.
	Extended map[string]Extension
	Next     []string        // nodes triggered for step Step+1, in file order
	Joins    json.RawMessage // executor-defined join progress
	At       time.Time
	// Encoded says that the values (Changed, the extensions' tails,
	// Joins) come from an encoder that writes only JSON, the runner's:
	// the store does not validate them again, which cost as much as
	// encoding them (0.19 ms for a list of 2,000 URLs). A checkpoint
	// from anywhere else leaves it false and is checked.
	Encoded bool
}

// Store persists runs. Implementations are safe for concurrent use.
type Store interface {
	// AcquireLease makes l the run's lease, atomically, when the run has
	// none, when its holder is dead (!Lease.OwnerAlive) or when its holder is
	// l.Owner; otherwise it returns a *LeaseError naming the live holder.
	AcquireLease(ctx context.Context, runID string, l Lease) error
	// RenewLease moves owner's lease expiry to expires; it fails with an
	// error wrapping ErrLeaseLost when owner no longer holds the lease.
	RenewLease(ctx context.Context, runID, owner string, expires time.Time) error
	// ReleaseLease clears owner's lease; a no-op when another owner holds it.
	ReleaseLease(ctx context.Context, runID, owner string) error

	CreateRun(ctx context.Context, r *Run) error
	// FinishRun sets a run's status (and error, end time).
	FinishRun(ctx context.Context, id string, status Status, errMsg string, at time.Time) error
	// SetStatus changes a run's status without ending it (e.g. back to
	// running on resume).
	SetStatus(ctx context.Context, id string, status Status) error
	// RecordInvocation stores an invocation; recording the same identity
	// twice replaces the earlier record.
	RecordInvocation(ctx context.Context, inv *Invocation) error
	WriteCheckpoint(ctx context.Context, cp *Checkpoint) error

	GetRun(ctx context.Context, id string) (*Run, error)
	// ListRuns returns runs newest first; limit <= 0 means all.
	ListRuns(ctx context.Context, limit int) ([]*Run, error)
	// Checkpoints returns a run's checkpoints in step order.
	Checkpoints(ctx context.Context, runID string) ([]*Checkpoint, error)
	// Invocations returns a run's invocations ordered by step, then
	// finishing order. Recording a path twice replaces the earlier record.
	Invocations(ctx context.Context, runID string) ([]*Invocation, error)
	Close() error
}

// StepRecord is what a finished step leaves to record: the invocations not
// yet recorded and the step's checkpoint.
type StepRecord struct {
	Invocations []*Invocation
	Checkpoint  *Checkpoint
}

// StepCommitter is implemented by stores that can record several steps'
// invocations and checkpoints in one durable write (one transaction).
type StepCommitter interface {
	CommitSteps(ctx context.Context, steps []StepRecord) error
}

// InvocationBatcher is implemented by stores that can record several
// invocations in one durable write.
type InvocationBatcher interface {
	RecordInvocations(ctx context.Context, invs []*Invocation) error
}

// RecordInvocations records invs in order: in one write when st is an
// InvocationBatcher, else call by call. All that did not fail is durable
// when it returns; the error is the first failure.
func RecordInvocations(ctx context.Context, st Store, invs []*Invocation) error {
	if b, ok := st.(InvocationBatcher); ok {
		return b.RecordInvocations(ctx, invs)
	}
	var first error
	for _, inv := range invs {
		if err := st.RecordInvocation(ctx, inv); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// CommitSteps records steps in order: in one transaction when st is a
// StepCommitter, else call by call. Either way all of it is durable when
// CommitSteps returns.
func CommitSteps(ctx context.Context, st Store, steps []StepRecord) error {
	if c, ok := st.(StepCommitter); ok {
		return c.CommitSteps(ctx, steps)
	}
	for _, s := range steps {
		for _, inv := range s.Invocations {
			if err := st.RecordInvocation(ctx, inv); err != nil {
				return err
			}
		}
		if err := st.WriteCheckpoint(ctx, s.Checkpoint); err != nil {
			return err
		}
	}
	return nil
}
