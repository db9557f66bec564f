// Package postgres is a store.Store on PostgreSQL (pgx v5), for runs shared
// by many machines: `--store postgres://…` or LGX_STORE. Importing it
// registers the postgres:// and postgresql:// schemes with store.Open.
//
// It keeps what the SQLite store keeps, in the same shape: a run row with
// its lease, one invocation row per (run, path) with a sequence number that
// gives the finishing order, one checkpoint row per step holding only the
// changed keys, growing values as deltas (store.CheckpointEncoder), and the
// subgraph sources. Times are bigint unix nanoseconds and JSON is bytea
// holding the caller's bytes unchanged, as in SQLite.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lgx-run/lgx/store"
)

func init() {
	store.RegisterOpener("postgres", func(ctx context.Context, url string) (store.Store, error) {
		s, err := Open(ctx, url)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	})
}

// Store is a store.Store in a PostgreSQL database (in the schema the
// connection's search_path names first).
//
// Durability: each write method is one transaction, committed before it
// returns (with the server's synchronous_commit setting). Writes ignore
// cancellation of their context, like the SQLite store's: a finished
// invocation or the final status of a cancelled run is still recorded.
type Store struct {
	pool *pgxpool.Pool
	url  string // redacted, for messages

	// cpMu serializes checkpoint writes of this process: the encoder's
	// cache must see them in the order they were stored.
	cpMu sync.Mutex
	enc  *store.CheckpointEncoder
}

var (
	_ store.Store             = (*Store)(nil)
	_ store.Pruner            = (*Store)(nil)
	_ store.StepCommitter     = (*Store)(nil)
	_ store.InvocationBatcher = (*Store)(nil)
)

// connectTimeout bounds each connection attempt unless the URL sets
// connect_timeout.
const connectTimeout = 10 * time.Second

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string) and brings its schema up to date. It fails with an
// error wrapping store.ErrNewerSchema for a database written by a newer lgx.
func Open(ctx context.Context, url string) (*Store, error) {
	red := store.Redact(url)
	cfg, err := poolConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w: %w", red, store.ErrBadStoreURL, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", red, err)
	}
	s := &Store{pool: pool, url: red, enc: store.NewCheckpointEncoder()}
	if err := migrate(ctx, pool, red); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// poolConfig parses url, bounding connection attempts by connectTimeout
// when it sets no connect_timeout: a server behind a firewall that drops
// packets would otherwise hang lgx until TCP gives up (minutes).
func poolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	return cfg, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

const (
	runCols = `id, workflow, file, source, inputs, status, error, started_at, ended_at, lease_owner, lease_pid, lease_host, lease_expires`
	noLease = `lease_owner = NULL, lease_pid = NULL, lease_host = NULL, lease_expires = NULL`
	invCols = `run_id, path, step, node, idx, status, writes, error, error_kind, attempts, started_at, ended_at`
	// A replaced invocation takes a new sequence number (EXCLUDED.seq is
	// the default drawn for the proposed row), so it moves to the end of
	// its step's finishing order, as in SQLite.
	insertInv = `INSERT INTO invocations (` + invCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (run_id, path) DO UPDATE SET step = EXCLUDED.step, node = EXCLUDED.node, idx = EXCLUDED.idx,
	status = EXCLUDED.status, writes = EXCLUDED.writes, error = EXCLUDED.error, error_kind = EXCLUDED.error_kind,
	attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, seq = EXCLUDED.seq`
	insertCP = `INSERT INTO checkpoints (run_id, step, changed, deltas, next, joins, at) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (run_id, step) DO UPDATE SET changed = EXCLUDED.changed, deltas = EXCLUDED.deltas,
	next = EXCLUDED.next, joins = EXCLUDED.joins, at = EXCLUDED.at`
)

// inTx runs fn in a transaction, immune to ctx's cancellation, and commits
// it; fn's error is returned as is, a failure to begin or commit wrapped
// with what.
func (s *Store) inTx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	ctx = context.WithoutCancel(ctx)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// isCode reports whether err is a PostgreSQL error with the given SQLSTATE.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

const (
	foreignKeyViolation = "23503"
	uniqueViolation     = "23505"
)

// CreateRun records a new run with its subgraph sources, in one transaction.
func (s *Store) CreateRun(ctx context.Context, r *store.Run) error {
	if err := store.CheckRun(r); err != nil {
		return err
	}
	var (
		owner, host *string
		pid         *int64
	)
	var expires *int64
	if l := r.Lease; l != nil {
		p := int64(l.PID)
		owner, host, pid, expires = &l.Owner, &l.Host, &p, nanos(l.Expires)
	}
	return s.inTx(ctx, "create run "+r.ID, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		_, err := tx.Exec(wctx, `INSERT INTO runs (`+runCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			r.ID, r.Workflow, r.File, r.Source, []byte(r.Inputs), string(r.Status), r.Error,
			nanos(r.StartedAt), nanos(r.EndedAt), owner, pid, host, expires)
		if isCode(err, uniqueViolation) {
			return fmt.Errorf("create run %s: %w", r.ID, store.ErrRunExists)
		}
		if err != nil {
			return fmt.Errorf("create run %s: %w", r.ID, err)
		}
		if len(r.Subgraphs) == 0 {
			return nil
		}
		var b pgx.Batch
		for _, p := range slices.Sorted(maps.Keys(r.Subgraphs)) {
			b.Queue(`INSERT INTO run_sources (run_id, path, source) VALUES ($1, $2, $3)`, r.ID, p, r.Subgraphs[p])
		}
		if err := tx.SendBatch(wctx, &b).Close(); err != nil {
			return fmt.Errorf("create run %s: subgraph sources: %w", r.ID, err)
		}
		return nil
	})
}

// AcquireLease makes l the run's lease when it has none, its holder is dead
// or its holder is l.Owner; otherwise it returns a *store.LeaseError. The
// row is read FOR UPDATE and written in one transaction: of two processes
// (on any machines) racing for a run, exactly one wins.
func (s *Store) AcquireLease(ctx context.Context, runID string, l store.Lease) error {
	if err := store.CheckLease(runID, l); err != nil {
		return err
	}
	what := "acquire lease of run " + runID
	return s.inTx(ctx, what, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		var (
			owner, host  *string
			pid, expires *int64
		)
		err := tx.QueryRow(wctx, `SELECT lease_owner, lease_pid, lease_host, lease_expires FROM runs WHERE id = $1 FOR UPDATE`, runID).
			Scan(&owner, &pid, &host, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := store.LeaseHeld(runID, leaseOf(owner, pid, host, expires), l.Owner, time.Now()); err != nil {
			return err
		}
		_, err = tx.Exec(wctx, `UPDATE runs SET lease_owner = $1, lease_pid = $2, lease_host = $3, lease_expires = $4 WHERE id = $5`,
			l.Owner, int64(l.PID), l.Host, nanos(l.Expires), runID)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// RenewLease moves owner's lease expiry; store.ErrLeaseLost when owner no
// longer holds it.
func (s *Store) RenewLease(ctx context.Context, runID, owner string, expires time.Time) error {
	tag, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE runs SET lease_expires = $1 WHERE id = $2 AND lease_owner = $3`,
		nanos(expires), runID, owner)
	if err := updated(tag, err, "renew lease of run", runID); err != nil {
		if errors.Is(err, store.ErrNotFound) && s.mustExist(ctx, runID, "renew lease of run") == nil {
			return fmt.Errorf("renew lease of run %s by %s: %w", runID, owner, store.ErrLeaseLost)
		}
		return err
	}
	return nil
}

// ReleaseLease clears owner's lease; a no-op when another owner holds it.
func (s *Store) ReleaseLease(ctx context.Context, runID, owner string) error {
	tag, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE runs SET `+noLease+` WHERE id = $1 AND lease_owner = $2`, runID, owner)
	if err := updated(tag, err, "release lease of run", runID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return s.mustExist(ctx, runID, "release lease of run")
		}
		return err
	}
	return nil
}

// FinishRun sets a run's final status, error text and end time, and clears
// its lease: the run stopped, so nobody executes it.
func (s *Store) FinishRun(ctx context.Context, id string, status store.Status, errMsg string, at time.Time) error {
	s.cpMu.Lock()
	s.enc.Forget(id) // a resume starts from full values
	s.cpMu.Unlock()
	tag, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE runs SET status = $1, error = $2, ended_at = $3, `+noLease+` WHERE id = $4`,
		string(status), errMsg, nanos(at), id)
	return updated(tag, err, "finish run", id)
}

// SetStatus changes a run's status and clears the error text and end time
// of an earlier finish: a resumed run has not ended.
func (s *Store) SetStatus(ctx context.Context, id string, status store.Status) error {
	tag, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE runs SET status = $1, error = '', ended_at = NULL WHERE id = $2`,
		string(status), id)
	return updated(tag, err, "set status of run", id)
}

// updated maps an UPDATE that touched no row to store.ErrNotFound.
func updated(tag pgconn.CommandTag, err error, what, id string) error {
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %s: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// RecordInvocation stores inv, replacing an earlier record with the same
// (RunID, Path), which then moves to the end of its step's finishing order.
func (s *Store) RecordInvocation(ctx context.Context, inv *store.Invocation) error {
	if err := store.CheckInvocation(inv); err != nil {
		return err
	}
	_, err := s.pool.Exec(context.WithoutCancel(ctx), insertInv, invArgs(inv)...)
	if isCode(err, foreignKeyViolation) {
		return fmt.Errorf("record invocation of run %s: %w", inv.RunID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record invocation %s of run %s: %w", store.PathOf(inv), inv.RunID, err)
	}
	return nil
}

func invArgs(inv *store.Invocation) []any {
	return []any{inv.RunID, store.PathOf(inv), inv.Step, inv.Node, inv.Index, inv.Status, []byte(inv.Writes),
		inv.Error, inv.ErrorKind, inv.Attempts, nanos(inv.StartedAt), nanos(inv.EndedAt)}
}

// RecordInvocations stores invs, in order, in one transaction (one round
// trip: the statements are pipelined). If it fails, it records them one by
// one, so that no good record is lost to a bad one, and returns the first
// error.
func (s *Store) RecordInvocations(ctx context.Context, invs []*store.Invocation) error {
	for _, inv := range invs {
		if err := store.CheckInvocation(inv); err != nil {
			return err
		}
	}
	if len(invs) > 1 {
		err := s.inTx(ctx, "record invocations", func(tx pgx.Tx) error {
			var b pgx.Batch
			for _, inv := range invs {
				b.Queue(insertInv, invArgs(inv)...)
			}
			return tx.SendBatch(context.WithoutCancel(ctx), &b).Close()
		})
		if err == nil {
			return nil
		}
	}
	var first error
	for _, inv := range invs {
		if err := s.RecordInvocation(ctx, inv); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// WriteCheckpoint stores cp, replacing an earlier checkpoint of the same
// run and step. Values that extend the key's previous value are stored as
// deltas.
func (s *Store) WriteCheckpoint(ctx context.Context, cp *store.Checkpoint) error {
	if err := store.CheckCheckpoint(cp); err != nil {
		return err
	}
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	enc, commit, err := s.enc.Encode(cp)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), insertCP, cpArgs(cp, enc)...); err != nil {
		s.enc.Forget(cp.RunID)
		return checkpointErr(cp, err)
	}
	commit()
	return nil
}

func cpArgs(cp *store.Checkpoint, enc store.EncodedCheckpoint) []any {
	return []any{cp.RunID, cp.Step, enc.Changed, enc.Deltas, enc.Next, enc.Joins, nanos(cp.At)}
}

func checkpointErr(cp *store.Checkpoint, err error) error {
	if isCode(err, foreignKeyViolation) {
		return fmt.Errorf("write checkpoint of run %s: %w", cp.RunID, store.ErrNotFound)
	}
	return fmt.Errorf("write checkpoint of run %s step %d: %w", cp.RunID, cp.Step, err)
}

// WritesExtensions reports true: the checkpoint encoder stores extended
// values as deltas (see store.CheckpointEncoder.Encode).
func (s *Store) WritesExtensions() bool { return true }

// CommitSteps records steps (invocations, then the checkpoint, step by
// step) in one transaction, its statements pipelined in one round trip.
func (s *Store) CommitSteps(ctx context.Context, steps []store.StepRecord) error {
	for _, st := range steps {
		for _, inv := range st.Invocations {
			if err := store.CheckInvocation(inv); err != nil {
				return err
			}
		}
		if err := store.CheckCheckpoint(st.Checkpoint); err != nil {
			return err
		}
	}
	if len(steps) == 0 {
		return nil
	}
	runID := steps[0].Checkpoint.RunID
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	var b pgx.Batch
	for _, st := range steps {
		for _, inv := range st.Invocations {
			b.Queue(insertInv, invArgs(inv)...)
		}
		enc, commit, err := s.enc.Encode(st.Checkpoint)
		if err != nil {
			s.enc.Forget(runID) // the steps before it were committed to the cache, not stored
			return err
		}
		b.Queue(insertCP, cpArgs(st.Checkpoint, enc)...)
		commit() // the next checkpoint's deltas are computed against this one
	}
	err := s.inTx(ctx, "commit steps of run "+runID, func(tx pgx.Tx) error {
		err := tx.SendBatch(context.WithoutCancel(ctx), &b).Close()
		if isCode(err, foreignKeyViolation) {
			return fmt.Errorf("commit steps of run %s: %w", runID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("commit steps of run %s: %w", runID, err)
		}
		return nil
	})
	if err != nil {
		// The cache holds values that were not stored: later values of
		// these runs are stored whole.
		for _, st := range steps {
			s.enc.Forget(st.Checkpoint.RunID)
		}
	}
	return err
}

// GetRun returns the run with the given id, or store.ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (*store.Run, error) {
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get run %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT path, source FROM run_sources WHERE run_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get run %s: subgraph sources: %w", id, err)
	}
	defer rows.Close()
	if r.Subgraphs, err = store.ReadSources(rows); err != nil {
		return nil, fmt.Errorf("get run %s: subgraph sources: %w", id, err)
	}
	return r, nil
}

// ListRuns returns runs newest first (by StartedAt, then by ID); limit <= 0
// means all.
func (s *Store) ListRuns(ctx context.Context, limit int) ([]*store.Run, error) {
	var lim *int64 // LIMIT NULL: all
	if limit > 0 {
		n := int64(limit)
		lim = &n
	}
	rows, err := s.pool.Query(ctx, `SELECT `+runCols+` FROM runs ORDER BY started_at DESC NULLS LAST, id DESC LIMIT $1`, lim)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []*store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// Checkpoints returns a run's checkpoints in step order, or
// store.ErrNotFound for an unknown run.
func (s *Store) Checkpoints(ctx context.Context, runID string) ([]*store.Checkpoint, error) {
	var (
		out []*store.Checkpoint
		dec store.CheckpointDecoder
	)
	err := s.scanCheckpoints(ctx, runID, 0, func(cp *store.Checkpoint, enc store.EncodedCheckpoint) error {
		if err := dec.Decode(cp, enc); err != nil {
			return err
		}
		out = append(out, cp)
		return nil
	})
	return out, err
}

// MergedCheckpoint returns the run's checkpoints folded into one (see
// store.CheckpointFolder), in memory proportional to the state: what
// resume replays.
func (s *Store) MergedCheckpoint(ctx context.Context, runID string) (*store.Checkpoint, error) {
	var m store.CheckpointMerge
	if err := s.scanCheckpoints(ctx, runID, 0, m.Add); err != nil {
		return nil, err
	}
	return m.Result(), nil
}

// scanCheckpoints calls each with the run's checkpoint rows in step
// order, from step from on; from 0 first checks that the run exists.
func (s *Store) scanCheckpoints(ctx context.Context, runID string, from int64, each func(*store.Checkpoint, store.EncodedCheckpoint) error) error {
	if from == 0 {
		if err := s.mustExist(ctx, runID, "checkpoints of run"); err != nil {
			return err
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT step, changed, deltas, next, joins, at FROM checkpoints WHERE run_id = $1 AND step >= $2 ORDER BY step`, runID, from)
	if err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			enc store.EncodedCheckpoint
			at  *int64
		)
		cp := &store.Checkpoint{RunID: runID}
		if err := rows.Scan(&cp.Step, &enc.Changed, &enc.Deltas, &enc.Next, &enc.Joins, &at); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cp.At = fromNanos(at)
		if err := each(cp, enc); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	return nil
}

// Invocations returns a run's invocations ordered by step, then by the
// order they were recorded, or store.ErrNotFound for an unknown run.
func (s *Store) Invocations(ctx context.Context, runID string) ([]*store.Invocation, error) {
	if err := s.mustExist(ctx, runID, "invocations of run"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+invCols+` FROM invocations WHERE run_id = $1 ORDER BY step, seq`, runID)
	if err != nil {
		return nil, fmt.Errorf("invocations of run %s: %w", runID, err)
	}
	defer rows.Close()
	return store.ScanInvocations(rows, runID)
}

// PruneRuns implements store.Pruner. The run's invocations, checkpoints and
// sources go with it (ON DELETE CASCADE).
func (s *Store) PruneRuns(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.pool.Query(context.WithoutCancel(ctx), `DELETE FROM runs
		WHERE status IN ($1, $2, $3) AND ended_at IS NOT NULL AND ended_at < $4 RETURNING id`,
		string(store.StatusCompleted), string(store.StatusFailed), string(store.StatusCancelled), before.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	slices.Sort(ids)
	s.cpMu.Lock()
	for _, id := range ids {
		s.enc.Forget(id)
	}
	s.cpMu.Unlock()
	return ids, nil
}

// mustExist returns store.ErrNotFound unless the run exists.
func (s *Store) mustExist(ctx context.Context, runID, what string) error {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1)`, runID).Scan(&ok); err != nil {
		return fmt.Errorf("%s %s: %w", what, runID, err)
	}
	if !ok {
		return fmt.Errorf("%s %s: %w", what, runID, store.ErrNotFound)
	}
	return nil
}

// scanRun reads a run row (runCols), with its status as readers see it.
func scanRun(row pgx.Row) (*store.Run, error) {
	var (
		r              store.Run
		status         string
		inputs         []byte
		started, ended *int64
		owner, host    *string
		pid, expires   *int64
	)
	if err := row.Scan(&r.ID, &r.Workflow, &r.File, &r.Source, &inputs, &status, &r.Error, &started, &ended,
		&owner, &pid, &host, &expires); err != nil {
		return nil, err
	}
	r.Inputs = inputs
	r.StartedAt, r.EndedAt = fromNanos(started), fromNanos(ended)
	r.Lease = leaseOf(owner, pid, host, expires)
	r.Status = store.EffectiveStatus(store.Status(status), r.Lease, time.Now())
	return &r, nil
}

// leaseOf builds a lease from its columns, nil when none is held.
func leaseOf(owner *string, pid *int64, host *string, expires *int64) *store.Lease {
	if owner == nil {
		return nil
	}
	l := &store.Lease{Owner: *owner, Expires: fromNanos(expires)}
	if pid != nil {
		l.PID = int(*pid)
	}
	if host != nil {
		l.Host = *host
	}
	return l
}

// nanos encodes t as unix nanoseconds, NULL for the zero time.
func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
