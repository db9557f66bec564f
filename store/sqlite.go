package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a write waits for another process (another
// `lgx run` on the same store) to release the write lock before failing.
const busyTimeout = 10 * time.Second

// maxConns bounds the connection pool: one connection writes at a time
// (SQLite serializes writers, and SQLite.wmu does so without spinning on
// the busy handler) while the others serve concurrent reads, which WAL
// lets proceed alongside the writer.
const maxConns = 4

// SQLite is the default Store: one embedded SQLite file (pure Go, no cgo)
// shared by every lgx process of a user.
//
// Durability: the file is in WAL mode with synchronous=NORMAL. Each write
// method is a single autocommit statement, so when it returns its commit
// record is in the WAL file, i.e. in the operating system's page cache.
// Killing the process (SIGKILL, Ctrl-C, a crash) loses nothing that was
// returned: the kernel still writes those pages, and the next open replays
// the WAL. Only a power loss or kernel crash can drop the last few commits
// (synchronous=FULL would fsync every commit to cover that, at a large
// cost per node invocation); the database itself is never corrupted.
// The log is copied into the database file by a goroutine of the store's
// (sqlite_wal.go), not inside a writer's commit.
//
// Writes ignore cancellation of their context: a finished invocation, or
// the final status of a run stopped with Ctrl-C, is recorded even though
// the run's context is already done. Reads honour it.
type SQLite struct {
	db   *sql.DB
	path string
	wmu  sync.Mutex // serializes this process's writers; guards cache
	// readOnly, when set, says why the store cannot be written; every
	// write then fails with ErrReadOnly instead of reaching SQLite.
	readOnly error

	// enc holds, per live run, the last value written for each checkpoint
	// key, the base of checkpoint deltas (sqlite_delta.go); wmu serializes
	// it.
	enc *CheckpointEncoder
	// wal checkpoints the write-ahead log in the background (sqlite_wal.go);
	// nil when read-only.
	wal *walCheckpointer

	createRun, finishRun, setStatus, insertBatch, insertCPs *sql.Stmt
	appendEvents, events                                    *sql.Stmt
	getRun, listRuns, runExists, invocations, checkpoints   *sql.Stmt
	batches, cpBatches, cpRanges, lastLegacyCP, loneInvs    *sql.Stmt
	insertSource, sources                                   *sql.Stmt
	getLease, setLease, renewLease, releaseLease            *sql.Stmt
	closeOnce                                               sync.Once
	closeErr                                                error
}

var _ Store = (*SQLite)(nil)

// DefaultPath returns where the store lives unless told otherwise:
// $LGX_HOME/lgx.db, else $XDG_STATE_HOME/lgx/lgx.db, else
// ~/.local/state/lgx/lgx.db. It creates the directory (mode 0700: runs
// hold workflow inputs and model outputs).
func DefaultPath() (string, error) {
	var dir string
	switch {
	case os.Getenv("LGX_HOME") != "":
		dir = os.Getenv("LGX_HOME")
	case os.Getenv("XDG_STATE_HOME") != "":
		dir = filepath.Join(os.Getenv("XDG_STATE_HOME"), "lgx")
	default:
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("store location: set LGX_HOME: %w", err)
		}
		dir = filepath.Join(home, ".local", "state", "lgx")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("store location: %w", err)
	}
	return filepath.Join(dir, "lgx.db"), nil
}

// ErrReadOnly is wrapped by every write to a store that cannot be written
// (the file or its directory is not writable, or it was opened with
// OpenSQLiteReadOnly). Reads work.
var ErrReadOnly = errors.New("store is read-only")

// ErrNoStoreDir is wrapped by the error of opening a store file whose
// directory does not exist: lgx creates the file, never the directories
// a --store path names (a typo would scatter databases).
var ErrNoStoreDir = errors.New("cannot create the store")

// OpenSQLite opens the store at path, creating the file if needed, and
// brings its schema up to date. It fails with ErrNotLgxStore ("… is not
// an lgx store: …") for a file that is not an SQLite database, is corrupt,
// is a directory or belongs to another program, and with ErrNewerSchema
// for a store written by a newer lgx; such files are refused before
// anything is written to them. A store this process may not write (the
// file or its directory is read-only to it) is opened read-only, so that
// `lgx runs list` still works; its writes fail with ErrReadOnly.
func OpenSQLite(path string) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return openSQLite(path, abs, notWritable(abs))
}

// OpenSQLiteReadOnly opens an existing store for reading only: nothing is
// ever written to the file (not even a migration), and every write fails
// with ErrReadOnly. The store must be at this lgx's schema version.
func OpenSQLiteReadOnly(path string) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return openSQLite(path, abs, errors.New("opened read-only"))
}

// openSQLite opens abs for reading and writing, or for reading only when
// readOnly says why it cannot be written.
func openSQLite(path, abs string, readOnly error) (*SQLite, error) {
	if readOnly == nil {
		return openDSN(path, abs, nil, false)
	}
	s, err := openDSN(path, abs, readOnly, false)
	if err != nil && needsImmutable(err) {
		// A WAL database whose -shm file is gone (lgx removes it on a clean
		// close) cannot be opened read-only when the directory is not
		// writable either: SQLite would need to create it
		// (SQLITE_READONLY_DIRECTORY). immutable=1 reads the file as is,
		// which is right for a store nobody here can write.
		return openDSN(path, abs, readOnly, true)
	}
	return s, err
}

// needsImmutable reports whether a read-only open failed for want of the
// WAL's shared-memory file.
func needsImmutable(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_CANTOPEN || c == sqlite3.SQLITE_READONLY
}

func openDSN(path, abs string, readOnly error, immutable bool) (*SQLite, error) {
	// A file: URI keeps '?' and '#' in the path from being read as URI
	// syntax; the _pragma parameters run on every new connection and
	// write nothing to the file. WAL mode, which is stored in the file, is
	// set by init once the file is known to be an lgx store.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	if readOnly == nil {
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walBackstopPages))
		q.Set("_txlock", "immediate")
	} else {
		q.Set("mode", "ro")
		if immutable {
			q.Set("immutable", "1")
		}
	}
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String() + "?" + q.Encode()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, classify(path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)

	s := &SQLite{db: db, path: path, readOnly: readOnly, enc: NewCheckpointEncoder()}
	if readOnly == nil {
		s.wal = newWALCheckpointer(db)
	}
	if err := s.initRetrying(); err != nil {
		db.Close()
		return nil, classify(path, err)
	}
	return s, nil
}

// ReadOnly reports why the store cannot be written, nil when it can.
func (s *SQLite) ReadOnly() error { return s.readOnly }

// errReadOnly is the error of a write to a read-only store; callers add
// what was being written.
func (s *SQLite) errReadOnly() error {
	return fmt.Errorf("%w: %s cannot be written (%v)", ErrReadOnly, s.path, s.readOnly)
}

// initRetrying runs init, retrying while the file is busy for up to
// busyTimeout. SQLite skips the busy handler in a few places that only a
// new file's first opens reach (switching it to WAL mode, a concurrent
// first migration), so two `lgx run`s started together on a new store
// could fail with SQLITE_BUSY at once despite busy_timeout.
func (s *SQLite) initRetrying() error {
	deadline := time.Now().Add(busyTimeout)
	wait := time.Millisecond
	for {
		err := s.init()
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED)
}

// invCols are the columns of the invocations table, which only earlier
// versions wrote (invbatch.go).
const invCols = `run_id, path, step, node, idx, status, writes, error, error_kind, attempts, started_at, ended_at`

// init migrates the schema (or, read-only, checks it is current), puts
// the file in WAL mode and prepares every statement. Nothing is written
// before migrate has checked that the file is an lgx store of a version
// this lgx knows.
func (s *SQLite) init() error {
	ctx := context.Background()
	if s.readOnly != nil {
		if err := s.checkReadOnly(ctx); err != nil {
			return err
		}
	} else {
		if err := migrate(ctx, s.db, s.path, migrations); err != nil {
			return err
		}
		// Persistent in the file: connections opened before see the new
		// mode at their next transaction.
		var mode string
		if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
			return err
		}
		if mode != "wal" {
			return fmt.Errorf("store %s: cannot use WAL mode (journal mode is %s)", s.path, mode)
		}
	}
	const runCols = `id, workflow, file, source, inputs, status, error, started_at, ended_at, lease_owner, lease_pid, lease_host, lease_expires`
	const noLease = `lease_owner = NULL, lease_pid = NULL, lease_host = NULL, lease_expires = NULL`
	stmts := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.createRun, `INSERT INTO runs (` + runCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.finishRun, `UPDATE runs SET status = ?, error = ?, ended_at = ?, ` + noLease + ` WHERE id = ?`},
		{&s.setStatus, `UPDATE runs SET status = ?, error = '', ended_at = NULL WHERE id = ?`},
		{&s.insertBatch, `INSERT INTO invocation_batches (run_id, invs) VALUES (?, ?)`},
		{&s.appendEvents, appendEventsSQL},
		{&s.events, `SELECT seq, events FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`},
		{&s.batches, `SELECT invs FROM invocation_batches WHERE run_id = ? ORDER BY id`},
		{&s.insertCPs, `INSERT INTO checkpoint_batches (run_id, first, last, cps, invs) VALUES (?, ?, ?, ?, ?)`},
		{&s.cpBatches, `SELECT cps FROM checkpoint_batches WHERE run_id = ? ORDER BY id`},
		{&s.cpRanges, `SELECT first, last FROM checkpoint_batches WHERE run_id = ? ORDER BY id`},
		{&s.loneInvs, loneInvsQuery},
		{&s.lastLegacyCP, `SELECT max(step) FROM checkpoints WHERE run_id = ?`},
		{&s.getRun, `SELECT ` + runCols + ` FROM runs WHERE id = ?`},
		{&s.listRuns, `SELECT ` + runCols + ` FROM runs ORDER BY started_at DESC, id DESC LIMIT ?`},
		{&s.runExists, `SELECT count(*) FROM runs WHERE id = ?`},
		{&s.invocations, `SELECT ` + invCols + ` FROM invocations WHERE run_id = ? ORDER BY step, rowid`},
		{&s.checkpoints, `SELECT run_id, step, changed, deltas, next, joins, at FROM checkpoints WHERE run_id = ? ORDER BY step`},
		{&s.insertSource, `INSERT INTO run_sources (run_id, path, source) VALUES (?, ?, ?)`},
		{&s.sources, `SELECT path, source FROM run_sources WHERE run_id = ?`},
		{&s.getLease, `SELECT lease_owner, lease_pid, lease_host, lease_expires FROM runs WHERE id = ?`},
		{&s.setLease, `UPDATE runs SET lease_owner = ?, lease_pid = ?, lease_host = ?, lease_expires = ? WHERE id = ?`},
		{&s.renewLease, `UPDATE runs SET lease_expires = ? WHERE id = ? AND lease_owner = ?`},
		{&s.releaseLease, `UPDATE runs SET ` + noLease + ` WHERE id = ? AND lease_owner = ?`},
	}
	for _, st := range stmts {
		p, err := s.db.PrepareContext(ctx, st.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", st.sql, err)
		}
		*st.dst = p
	}
	return nil
}

// readableFrom is the oldest schema version this lgx reads without
// migrating it: version 10 changed no table, it only marks stores whose
// checkpoints may refer to the run's inputs, which this lgx reads whatever
// the version.
const readableFrom = 9

// checkReadOnly refuses, for a store opened read-only, a file that is not
// an lgx store or at a schema version this lgx cannot read unmigrated (it
// cannot be migrated).
func (s *SQLite) checkReadOnly(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil) // deferred: reads only
	if err != nil {
		return err
	}
	defer tx.Rollback()
	version, err := checkHeader(ctx, tx, s.path, len(migrations))
	if err != nil {
		return err
	}
	if version < readableFrom {
		return fmt.Errorf("store %s is read-only (%v) and at schema version %d; this lgx needs version %d: open it once with write access to upgrade it: %w",
			s.path, s.readOnly, version, len(migrations), ErrReadOnly)
	}
	return nil
}

// classify turns an open failure into a message that says what is wrong
// with the file.
func classify(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%s is %w: %w", path, ErrNotLgxStore, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("store %s is locked by another process: %w", path, err)
		case sqlite3.SQLITE_CANTOPEN:
			if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
				return fmt.Errorf("%s is a directory, %w: %w", path, ErrNotLgxStore, err)
			}
			if dir := filepath.Dir(path); !isDir(dir) {
				// SQLite's "unable to open database file" says nothing more.
				return fmt.Errorf("open store %s: %w: directory %s does not exist (lgx creates the store file, not its directories)", path, ErrNoStoreDir, dir)
			}
		}
		return fmt.Errorf("open store %s: %w", path, err)
	}
	return err
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// Path returns the path the store was opened with.
func (s *SQLite) Path() string { return s.path }

// DiskSize returns the bytes the store occupies on disk: the database file
// plus its write-ahead log.
func (s *SQLite) DiskSize() (int64, error) {
	var total int64
	for _, p := range []string{s.path, s.path + "-wal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("store size: %w", err)
		}
		total += fi.Size()
	}
	return total, nil
}

// DataSize returns the logical size of the database in bytes (pages in
// use times page size), counting data still in the write-ahead log once.
// It is what the data costs, independent of WAL preallocation.
func (s *SQLite) DataSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store size: %w", err)
	}
	return n, nil
}

// write runs one write statement, serialized with this process's other
// writers and immune to ctx's cancellation (see SQLite).
func (s *SQLite) write(ctx context.Context, st *sql.Stmt, args ...any) (sql.Result, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked(ctx, st, args...)
}

// writeLocked is write for a caller already holding wmu.
func (s *SQLite) writeLocked(ctx context.Context, st *sql.Stmt, args ...any) (sql.Result, error) {
	if s.readOnly != nil {
		return nil, s.errReadOnly()
	}
	res, err := st.ExecContext(context.WithoutCancel(ctx), args...)
	if err == nil {
		s.wal.wrote(argBytes(args))
	}
	return res, s.readOnlyErr(err)
}

// readOnlyErr marks err with ErrReadOnly when SQLite refused a write
// because the file, its directory or the file system is read-only (which
// may change after the store was opened).
func (s *SQLite) readOnlyErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY {
		return fmt.Errorf("%w: %s: %w", ErrReadOnly, s.path, err)
	}
	return err
}

// CreateRun records a new run. Its ID must be non-empty and unused.
func (s *SQLite) CreateRun(ctx context.Context, r *Run) error {
	if err := checkRun(r); err != nil {
		return err
	}
	var owner, host, pid, expires any
	if l := r.Lease; l != nil {
		owner, host, pid, expires = l.Owner, l.Host, l.PID, nanos(l.Expires)
	}
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	err := s.inTx(wctx, "create run "+r.ID, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(wctx, s.createRun).ExecContext(wctx, r.ID, r.Workflow, r.File, r.Source, []byte(r.Inputs),
			string(r.Status), r.Error, nanos(r.StartedAt), nanos(r.EndedAt), owner, pid, host, expires)
		if isCode(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
			return fmt.Errorf("create run %s: %w", r.ID, errRunExists)
		}
		if err != nil {
			return fmt.Errorf("create run %s: %w", r.ID, s.readOnlyErr(err))
		}
		s.wal.wrote(len(r.Inputs) + len(r.Source))
		ins := tx.StmtContext(wctx, s.insertSource)
		for _, p := range slices.Sorted(maps.Keys(r.Subgraphs)) {
			if _, err := ins.ExecContext(wctx, r.ID, p, r.Subgraphs[p]); err != nil {
				return fmt.Errorf("create run %s: subgraph %s: %w", r.ID, p, err)
			}
			s.wal.wrote(len(r.Subgraphs[p]))
		}
		return nil
	})
	if err == nil {
		s.enc.SeedInputs(r.ID, r.Inputs, r.InputValues)
	}
	s.wmu.Unlock()
	return err
}

// AcquireLease makes l the run's lease when it has none, its holder is
// dead or its holder is l.Owner; otherwise it returns a *LeaseError. The
// check and the update are one immediate transaction, which holds the
// file's write lock: of two processes racing for a run, exactly one wins.
func (s *SQLite) AcquireLease(ctx context.Context, runID string, l Lease) error {
	if err := checkLease(runID, l); err != nil {
		return err
	}
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.inTx(wctx, "acquire lease of run "+runID, func(tx *sql.Tx) error {
		var (
			owner, host  sql.NullString
			pid, expires sql.NullInt64
		)
		err := tx.StmtContext(wctx, s.getLease).QueryRowContext(wctx, runID).Scan(&owner, &pid, &host, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("acquire lease of run %s: %w", runID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("acquire lease of run %s: %w", runID, err)
		}
		if err := leaseHeld(runID, leaseOf(owner, pid, host, expires), l.Owner, time.Now()); err != nil {
			return err
		}
		if _, err := tx.StmtContext(wctx, s.setLease).ExecContext(wctx, l.Owner, l.PID, l.Host, nanos(l.Expires), runID); err != nil {
			return fmt.Errorf("acquire lease of run %s: %w", runID, err)
		}
		return nil
	})
}

// RenewLease moves owner's lease expiry; ErrLeaseLost when owner no
// longer holds it.
func (s *SQLite) RenewLease(ctx context.Context, runID, owner string, expires time.Time) error {
	res, err := s.write(ctx, s.renewLease, nanos(expires), runID, owner)
	if err := updated(res, err, "renew lease of run", runID); err != nil {
		if errors.Is(err, ErrNotFound) && s.mustExist(ctx, runID, "renew lease of run") == nil {
			return fmt.Errorf("renew lease of run %s by %s: %w", runID, owner, ErrLeaseLost)
		}
		return err
	}
	return nil
}

// ReleaseLease clears owner's lease; a no-op when another owner holds it.
func (s *SQLite) ReleaseLease(ctx context.Context, runID, owner string) error {
	res, err := s.write(ctx, s.releaseLease, runID, owner)
	if err := updated(res, err, "release lease of run", runID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return s.mustExist(ctx, runID, "release lease of run")
		}
		return err
	}
	return nil
}

// FinishRun sets a run's final status, error text and end time, and
// clears its lease: the run stopped, so nobody executes it.
func (s *SQLite) FinishRun(ctx context.Context, id string, status Status, errMsg string, at time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.enc.Forget(id) // a resume starts from full values
	res, err := s.writeLocked(ctx, s.finishRun, string(status), errMsg, nanos(at), id)
	return updated(res, err, "finish run", id)
}

// SetStatus changes a run's status and marks it live again: the error text
// and end time of an earlier finish are cleared, since a resumed run has
// not ended.
func (s *SQLite) SetStatus(ctx context.Context, id string, status Status) error {
	res, err := s.write(ctx, s.setStatus, string(status), id)
	return updated(res, err, "set status of run", id)
}

// updated maps an UPDATE that touched no row to ErrNotFound.
func updated(res sql.Result, err error, what, id string) error {
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	}
	return nil
}

// RecordInvocation stores inv durably before returning, replacing any
// earlier record with the same (RunID, Path). A replaced
// record moves to the end of its step's finishing order.
func (s *SQLite) RecordInvocation(ctx context.Context, inv *Invocation) error {
	if err := checkInvocation(inv); err != nil {
		return err
	}
	return s.recordOne(ctx, inv)
}

// RecordInvocations stores invs, in order, in one transaction and one row
// per run (invbatch.go): the runner hands it the invocations of a parallel
// step that finished around the same time, which then cost one commit and
// one row instead of one each. If the transaction fails it records them
// one by one, so that no good record is lost to a bad one, and returns the
// first error.
func (s *SQLite) RecordInvocations(ctx context.Context, invs []*Invocation) error {
	for _, inv := range invs {
		if err := checkInvocation(inv); err != nil {
			return err
		}
	}
	if len(invs) > 1 {
		var err error
		if oneRun(invs) {
			// The recorder's case: one row, so one statement, which SQLite
			// commits atomically on its own. An explicit BEGIN and COMMIT
			// around it cost as much CPU as the insert (two more statements
			// through database/sql, BEGIN prepared anew each time).
			_, err = s.write(ctx, s.insertBatch, invs[0].RunID, appendInvBatch(nil, invs))
		} else {
			wctx := context.WithoutCancel(ctx)
			s.wmu.Lock()
			err = s.inTx(wctx, "record invocations", func(tx *sql.Tx) error {
				return s.insertBatches(wctx, tx, invs)
			})
			s.wmu.Unlock()
		}
		if err == nil {
			return nil
		}
	}
	var first error
	for _, inv := range invs {
		if err := s.recordOne(ctx, inv); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// oneRun reports whether every invocation of invs belongs to the first's run.
func oneRun(invs []*Invocation) bool {
	for _, inv := range invs[1:] {
		if inv.RunID != invs[0].RunID {
			return false
		}
	}
	return true
}

// inTx runs fn in a transaction and commits it, or rolls it back if fn
// fails. fn's error is returned as is (marked ErrReadOnly when SQLite
// refused to write); a failure to begin or commit is wrapped with what.
// The caller holds wmu.
func (s *SQLite) inTx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	if s.readOnly != nil {
		return fmt.Errorf("%s: %w", what, s.errReadOnly())
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, s.readOnlyErr(err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return s.readOnlyErr(err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, s.readOnlyErr(err))
	}
	s.wal.wrote(0) // fn's values are counted by fn
	return nil
}

// recordOne records inv in a transaction (and a batch row) of its own.
func (s *SQLite) recordOne(ctx context.Context, inv *Invocation) error {
	_, err := s.write(ctx, s.insertBatch, inv.RunID, appendInvBatch(nil, []*Invocation{inv}))
	if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return fmt.Errorf("record invocation of run %s: %w", inv.RunID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record invocation %s of run %s: %w", pathOf(inv), inv.RunID, err)
	}
	return nil
}

// insertBatches inserts invs within tx, one batch row per run (in the
// order each run first appears; a run's invocations keep their order).
// The caller holds wmu.
func (s *SQLite) insertBatches(ctx context.Context, tx *sql.Tx, invs []*Invocation) error {
	if len(invs) == 0 {
		return nil
	}
	st := tx.StmtContext(ctx, s.insertBatch)
	runID := invs[0].RunID
	one := true
	for _, inv := range invs[1:] {
		one = one && inv.RunID == runID
	}
	if one { // the recorder's and CommitSteps' case: all of one run
		b := appendInvBatch(nil, invs)
		if _, err := st.ExecContext(ctx, runID, b); err != nil {
			return invocationsErr(runID, err)
		}
		s.wal.wrote(len(b))
		return nil
	}
	var runs []string
	byRun := make(map[string][]*Invocation)
	for _, inv := range invs {
		if _, ok := byRun[inv.RunID]; !ok {
			runs = append(runs, inv.RunID)
		}
		byRun[inv.RunID] = append(byRun[inv.RunID], inv)
	}
	for _, id := range runs {
		b := appendInvBatch(nil, byRun[id])
		if _, err := st.ExecContext(ctx, id, b); err != nil {
			return invocationsErr(id, err)
		}
		s.wal.wrote(len(b))
	}
	return nil
}

// WriteCheckpoint stores cp durably before returning, replacing an earlier
// checkpoint of the same run and step. Values that extend the key's
// previous value are stored as deltas (see sqlite_delta.go).
func (s *SQLite) WriteCheckpoint(ctx context.Context, cp *Checkpoint) error {
	if err := checkCheckpoint(cp); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	enc, update, err := s.enc.Encode(cp)
	if err != nil {
		return err
	}
	b := appendCPEntry([]byte{invBatchVersion}, cp.Step, cp.At, enc)
	if _, err = s.writeLocked(ctx, s.insertCPs, cp.RunID, cp.Step, cp.Step, b, nil); err != nil {
		return checkpointErr(cp, err)
	}
	update()
	return nil
}

func checkpointErr(cp *Checkpoint, err error) error {
	if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return fmt.Errorf("write checkpoint of run %s: %w", cp.RunID, ErrNotFound)
	}
	return fmt.Errorf("write checkpoint of run %s step %d: %w", cp.RunID, cp.Step, err)
}

// WritesExtensions reports true: the checkpoint encoder stores extended
// values as deltas (see CheckpointEncoder.Encode).
func (s *SQLite) WritesExtensions() bool { return true }

// CommitSteps records steps in one transaction: one commit instead of one
// per record, which is most of what a durable step costs. The steps'
// invocations go in one batch row, in order, so a replaced invocation
// still moves to the end of its step; their checkpoints in another
// (invbatch.go). It is durable when it returns, like the separate calls;
// when any record is refused, nothing is written. A runner that records
// many steps uses a StepBatch instead (stepbatch.go), which encodes each
// as it comes.
func (s *SQLite) CommitSteps(ctx context.Context, steps []StepRecord) error {
	for _, st := range steps {
		for _, inv := range st.Invocations {
			if err := checkInvocation(inv); err != nil {
				return err
			}
		}
		if err := checkCheckpoint(st.Checkpoint); err != nil {
			return err
		}
	}
	b := &sqliteBatch{s: s}
	for _, st := range steps {
		if err := b.Add(st); err != nil {
			b.discard()
			return err
		}
	}
	return b.Commit(ctx)
}

// cpBatchRow is one row of checkpoint_batches being built: its
// checkpoints (b) and the lone records of their invocations (invs).
type cpBatchRow struct {
	runID       string
	first, last int
	b           []byte
	invs        loneRow
}

// addToCPBatch adds cp (encoded as enc) to the last row of its run, or
// starts a row when there is none or cp's step does not follow that row's
// last: a row's steps increase, which lets readers stream rows whose
// ranges do (scanCheckpoints). A new row's buffer comes from buf (an empty
// one of an earlier batch to reuse, or nil).
// It returns the rows, the index of the row cp went to and the bytes
// that row grew by.
func addToCPBatch(rows []cpBatchRow, cp *Checkpoint, enc EncodedCheckpoint, buf func() []byte) ([]cpBatchRow, int, int) {
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].runID != cp.RunID {
			continue
		}
		if r := &rows[i]; cp.Step > r.last {
			n := len(r.b)
			r.b = appendCPEntry(r.b, cp.Step, cp.At, enc)
			r.last = cp.Step
			return rows, i, len(r.b) - n
		}
		break
	}
	b := appendCPEntry(append(buf(), invBatchVersion), cp.Step, cp.At, enc)
	return append(rows, cpBatchRow{runID: cp.RunID, first: cp.Step, last: cp.Step, b: b}), len(rows), len(b)
}

// invocationsErr describes a failure to insert invocation rows.
func invocationsErr(runID string, err error) error {
	if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return fmt.Errorf("record invocations of run %s: %w", runID, ErrNotFound)
	}
	return fmt.Errorf("record invocations of run %s: %w", runID, err)
}

// GetRun returns the run with the given id, or ErrNotFound.
func (s *SQLite) GetRun(ctx context.Context, id string) (*Run, error) {
	r, err := scanRun(s.getRun.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, err)
	}
	rows, err := s.sources.QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get run %s: subgraph sources: %w", id, err)
	}
	defer rows.Close()
	if r.Subgraphs, err = ReadSources(rows); err != nil {
		return nil, fmt.Errorf("get run %s: subgraph sources: %w", id, err)
	}
	return r, nil
}

// ListRuns returns runs newest first (by StartedAt, then by ID, which is
// sortable); limit <= 0 means all.
func (s *SQLite) ListRuns(ctx context.Context, limit int) ([]*Run, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.listRuns.QueryContext(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []*Run
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

// Checkpoints returns a run's checkpoints in step order, or ErrNotFound
// for an unknown run.
func (s *SQLite) Checkpoints(ctx context.Context, runID string) ([]*Checkpoint, error) {
	var (
		out []*Checkpoint
		dec CheckpointDecoder
	)
	err := s.scanCheckpoints(ctx, runID, dec.SetInputs, func(cp *Checkpoint, enc EncodedCheckpoint) error {
		if err := dec.Decode(cp, enc); err != nil {
			return err
		}
		out = append(out, cp)
		return nil
	})
	return out, err
}

// MergedCheckpoint returns the run's checkpoints folded into one (see
// CheckpointFolder), in memory proportional to the state: what resume
// replays.
func (s *SQLite) MergedCheckpoint(ctx context.Context, runID string) (*Checkpoint, error) {
	var m CheckpointMerge
	if err := s.scanCheckpoints(ctx, runID, m.SetInputs, m.Add); err != nil {
		return nil, err
	}
	return m.Result(), nil
}

// scanCheckpoints calls each with the run's checkpoints in step order:
// those of the checkpoints table (earlier versions), then the batches.
// When every batch starts after the previous one (and the table's) ended,
// which is how the runner writes them, the rows are read and handed on
// one at a time; otherwise (a step written again) they are all read first
// and the last written of each step is kept, in memory proportional to
// what the run stored.
//
// setInputs is given how to read the run's inputs, the base of values
// stored against them (CheckpointDecoder.SetInputs), in the same read
// transaction.
func (s *SQLite) scanCheckpoints(ctx context.Context, runID string, setInputs func(func() ([]byte, error)), each func(*Checkpoint, EncodedCheckpoint) error) error {
	if err := s.mustExist(ctx, runID, "checkpoints of run"); err != nil {
		return err
	}
	// One read transaction, so that the rows read are those whose order
	// checkpointsOrdered checked, whatever another process commits.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	defer tx.Rollback()
	setInputs(func() ([]byte, error) { return runInputs(ctx, tx, runID) })
	ordered, err := s.checkpointsOrdered(ctx, tx, runID)
	if err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	var all []cpEntry
	emit := func(e cpEntry) error {
		if !ordered {
			all = append(all, e)
			return nil
		}
		return each(&Checkpoint{RunID: runID, Step: e.step, At: e.at}, e.enc)
	}
	if err := s.scanLegacyCheckpoints(ctx, tx, runID, emit); err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	rows, err := tx.StmtContext(ctx, s.cpBatches).QueryContext(ctx, runID)
	if err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	defer rows.Close()
	var entries []cpEntry
	for rows.Next() {
		var b sql.RawBytes
		if err := rows.Scan(&b); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		if entries, err = emitCPBatch(entries, b, emit); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	if ordered {
		return nil
	}
	for _, e := range lastPerStep(all) {
		if err := each(&Checkpoint{RunID: runID, Step: e.step, At: e.at}, e.enc); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
	}
	return nil
}

// runInputs reads a run's inputs (Run.Inputs).
func runInputs(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, runID string) ([]byte, error) {
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT inputs FROM runs WHERE id = ?`, runID).Scan(&b)
	return b, err
}

// checkpointsOrdered reports whether the run's checkpoint batches, in the
// order written, each start after the previous one (or the checkpoints
// table's last step) ended: then reading them in that order gives every
// step once, in order.
func (s *SQLite) checkpointsOrdered(ctx context.Context, tx *sql.Tx, runID string) (bool, error) {
	var legacy sql.NullInt64
	if err := tx.StmtContext(ctx, s.lastLegacyCP).QueryRowContext(ctx, runID).Scan(&legacy); err != nil {
		return false, err
	}
	prev, seen := legacy.Int64, legacy.Valid
	rows, err := tx.StmtContext(ctx, s.cpRanges).QueryContext(ctx, runID)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	ordered := true
	for rows.Next() {
		var first, last int64
		if err := rows.Scan(&first, &last); err != nil {
			return false, err
		}
		if seen && first <= prev {
			ordered = false
		}
		prev, seen = last, true
	}
	return ordered, rows.Err()
}

// scanLegacyCheckpoints calls each with the rows of the checkpoints table
// (written by earlier versions) in step order.
func (s *SQLite) scanLegacyCheckpoints(ctx context.Context, tx *sql.Tx, runID string, each func(cpEntry) error) error {
	rows, err := tx.StmtContext(ctx, s.checkpoints).QueryContext(ctx, runID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e    cpEntry
			rid  string
			at   sql.NullInt64
			step int
		)
		if err := rows.Scan(&rid, &step, &e.enc.Changed, &e.enc.Deltas, &e.enc.Next, &e.enc.Joins, &at); err != nil {
			return err
		}
		e.step, e.at = step, fromNanos(at)
		if err := each(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// loneInvsQuery selects a run's lone records (invbatch.go) in the order
// written; the partial index checkpoint_batches_invs serves it.
const loneInvsQuery = `SELECT invs FROM checkpoint_batches WHERE run_id = ? AND invs IS NOT NULL ORDER BY id`

// Invocations returns a run's invocations ordered by step, then by the
// order they were recorded (finishing order), or ErrNotFound for an
// unknown run. It reads the rows earlier versions wrote, then the batches,
// then the lone records of the checkpoint batches (invbatch.go), in one
// read transaction: a lone record and the batch of the invocations its
// step's tool calls or children recorded may be written by one commit.
func (s *SQLite) Invocations(ctx context.Context, runID string) ([]*Invocation, error) {
	if err := s.mustExist(ctx, runID, "invocations of run"); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("invocations of run %s: %w", runID, err)
	}
	defer tx.Rollback()
	rows, err := tx.StmtContext(ctx, s.invocations).QueryContext(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("invocations of run %s: %w", runID, err)
	}
	invs, err := ScanInvocations(rows, runID)
	rows.Close()
	if err != nil {
		return nil, err
	}
	for _, q := range [...]struct {
		stmt   *sql.Stmt
		decode func([]*Invocation, string, []byte) ([]*Invocation, error)
	}{{s.batches, decodeInvBatch}, {s.loneInvs, decodeLoneInvs}} {
		if invs, err = readInvBlobs(ctx, tx.StmtContext(ctx, q.stmt), runID, invs, q.decode); err != nil {
			return nil, fmt.Errorf("invocations of run %s: %w", runID, err)
		}
	}
	return mergeInvocations(invs), nil
}

// readInvBlobs appends to invs what decode reads from each blob stmt
// selects for run runID.
func readInvBlobs(ctx context.Context, stmt *sql.Stmt, runID string, invs []*Invocation,
	decode func([]*Invocation, string, []byte) ([]*Invocation, error)) ([]*Invocation, error) {
	rows, err := stmt.QueryContext(ctx, runID)
	if err != nil {
		return invs, err
	}
	defer rows.Close()
	var b sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&b); err != nil {
			return invs, err
		}
		if invs, err = decode(invs, runID, b); err != nil {
			return invs, err
		}
	}
	return invs, rows.Err()
}

// mustExist returns ErrNotFound unless the run exists.
func (s *SQLite) mustExist(ctx context.Context, runID, what string) error {
	var n int
	if err := s.runExists.QueryRowContext(ctx, runID).Scan(&n); err != nil {
		return fmt.Errorf("%s %s: %w", what, runID, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", what, runID, ErrNotFound)
	}
	return nil
}

// Close closes the database; the last connection to close folds the WAL
// back into the main file. Calling Close again returns the first result.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		s.wal.close()
		s.wmu.Unlock()
		s.closeErr = s.db.Close() // also closes the prepared statements
	})
	return s.closeErr
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// scanRun reads a run row (runCols), with its status as readers see it
// (see effectiveStatus).
func scanRun(sc rowScanner) (*Run, error) {
	var (
		r              Run
		status         string
		inputs         []byte
		started, ended sql.NullInt64
		owner, host    sql.NullString
		pid, expires   sql.NullInt64
	)
	if err := sc.Scan(&r.ID, &r.Workflow, &r.File, &r.Source, &inputs, &status, &r.Error, &started, &ended,
		&owner, &pid, &host, &expires); err != nil {
		return nil, err
	}
	r.Inputs = inputs
	r.StartedAt, r.EndedAt = fromNanos(started), fromNanos(ended)
	r.Lease = leaseOf(owner, pid, host, expires)
	r.Status = effectiveStatus(Status(status), r.Lease, time.Now())
	return &r, nil
}

// leaseOf builds a lease from its columns, nil when none is held.
func leaseOf(owner sql.NullString, pid sql.NullInt64, host sql.NullString, expires sql.NullInt64) *Lease {
	if !owner.Valid {
		return nil
	}
	return &Lease{Owner: owner.String, PID: int(pid.Int64), Host: host.String, Expires: fromNanos(expires)}
}

// isCode reports whether err is an SQLite error with the given extended
// result code.
func isCode(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code
}

// nanos encodes t as unix nanoseconds, NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// encodeNames encodes names as a JSON array of strings, nil as NULL.
// Node names are plain identifiers, which need no escaping; this runs for
// every step, where json.Marshal's reflection showed in profiles.
func encodeNames(names []string) []byte {
	if names == nil {
		return nil
	}
	return appendNames(make([]byte, 0, 2+len(names)*16), names)
}

// appendNames appends the JSON array of names to b.
func appendNames(b []byte, names []string) []byte {
	b = append(b, '[')
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		if plainJSON(n) {
			b = append(b, '"')
			b = append(b, n...)
			b = append(b, '"')
		} else {
			q, _ := json.Marshal(n) // a string always marshals
			b = append(b, q...)
		}
	}
	return append(b, ']')
}

// plainJSON reports whether s is a JSON string's content as it stands:
// printable ASCII that json.Marshal would not escape.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendKeyValue appends `"k":v` to b, k quoted as json.Marshal quotes it
// (without it where it needs no escaping: state keys are identifiers).
func appendKeyValue(b []byte, k string, v []byte) []byte {
	if len(b) > 1 {
		b = append(b, ',')
	}
	if plainJSON(k) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"')
	} else {
		kb, _ := json.Marshal(k) // a string always marshals
		b = append(b, kb...)
	}
	b = append(b, ':')
	return append(b, v...)
}
