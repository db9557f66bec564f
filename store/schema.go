package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrNotLgxStore is wrapped by OpenSQLite's error when the file is not an
// lgx store (not SQLite, corrupt, a directory, another program's
// database), so the CLI can tell the user to check the path.
var ErrNotLgxStore = errors.New("not an lgx store")

// ErrNewerSchema is wrapped by OpenSQLite's error when the store was
// written by a newer lgx; the fix is to upgrade lgx.
var ErrNewerSchema = errors.New("upgrade lgx")

// applicationID marks an SQLite file as an lgx store ("lgx" + 0x01) in its
// header, so lgx never adopts a database that belongs to something else.
const applicationID = 0x6c677801

// migrations is the SQLite schema history. migrations[i] brings a database
// from schema version i to i+1; the version lives in PRAGMA user_version.
// Never edit a released entry: append a new one.
//
// Times are INTEGER unix nanoseconds (UTC), NULL for the zero time: they
// sort and compare cheaply and cover years 1678-2262. JSON columns are
// BLOBs holding the caller's bytes unchanged.
var migrations = []string{
	// 1: runs, invocations (one row per identity; rowid gives the
	// finishing order because a replacement gets a new, larger rowid) and
	// checkpoints (one row per step, only the changed keys).
	`
CREATE TABLE runs (
	id         TEXT PRIMARY KEY NOT NULL,
	workflow   TEXT NOT NULL DEFAULT '',
	file       TEXT NOT NULL DEFAULT '',
	source     BLOB,
	inputs     BLOB,
	status     TEXT NOT NULL,
	error      TEXT NOT NULL DEFAULT '',
	started_at INTEGER,
	ended_at   INTEGER
);
CREATE INDEX runs_newest ON runs (started_at DESC, id DESC);

CREATE TABLE invocations (
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	step       INTEGER NOT NULL,
	node       TEXT NOT NULL,
	idx        INTEGER NOT NULL,
	status     TEXT NOT NULL,
	writes     BLOB,
	error      TEXT NOT NULL DEFAULT '',
	error_kind TEXT NOT NULL DEFAULT '',
	attempts   INTEGER NOT NULL DEFAULT 0,
	started_at INTEGER,
	ended_at   INTEGER,
	PRIMARY KEY (run_id, step, node, idx)
);
CREATE INDEX invocations_order ON invocations (run_id, step);

CREATE TABLE checkpoints (
	run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	step    INTEGER NOT NULL,
	changed BLOB,
	next    BLOB,
	joins   BLOB,
	at      INTEGER,
	PRIMARY KEY (run_id, step)
);
`,
	// 2: checkpoint values stored as deltas against an earlier checkpoint
	// (see sqlite_delta.go); changed keeps the keys stored whole.
	`ALTER TABLE checkpoints ADD COLUMN deltas BLOB;`,
	// 3: fewer b-trees to write per step, which is most of a durable
	// step's cost. invocations_order was a prefix of the primary key;
	// checkpoints are stored in their primary key's b-tree (WITHOUT
	// ROWID) instead of a rowid table plus a key index.
	`
DROP INDEX invocations_order;
CREATE TABLE checkpoints_v3 (
	run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	step    INTEGER NOT NULL,
	changed BLOB,
	next    BLOB,
	joins   BLOB,
	at      INTEGER,
	deltas  BLOB,
	PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
INSERT INTO checkpoints_v3 (run_id, step, changed, next, joins, at, deltas)
	SELECT run_id, step, changed, next, joins, at, deltas FROM checkpoints;
DROP TABLE checkpoints;
ALTER TABLE checkpoints_v3 RENAME TO checkpoints;
`,
	// 4 (SPEC §9.1-§9.3): an invocation's identity is its path within the
	// run, since subgraph children and tool calls share (step, node, idx);
	// existing records get the path of their (step, node, idx), in their
	// finishing (rowid) order. run_sources holds the subgraph workflows a
	// run can call, as recorded when it started. The lease columns name
	// the process executing a run (all NULL when none).
	`
CREATE TABLE invocations_v4 (
	run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	path       TEXT NOT NULL,
	step       INTEGER NOT NULL,
	node       TEXT NOT NULL,
	idx        INTEGER NOT NULL,
	status     TEXT NOT NULL,
	writes     BLOB,
	error      TEXT NOT NULL DEFAULT '',
	error_kind TEXT NOT NULL DEFAULT '',
	attempts   INTEGER NOT NULL DEFAULT 0,
	started_at INTEGER,
	ended_at   INTEGER,
	PRIMARY KEY (run_id, path)
);
INSERT INTO invocations_v4 (run_id, path, step, node, idx, status, writes, error, error_kind, attempts, started_at, ended_at)
	SELECT run_id, step || '/' || node || CASE WHEN idx >= 0 THEN '[' || idx || ']' ELSE '' END,
		step, node, idx, status, writes, error, error_kind, attempts, started_at, ended_at
	FROM invocations ORDER BY rowid;
DROP TABLE invocations;
ALTER TABLE invocations_v4 RENAME TO invocations;

CREATE TABLE run_sources (
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	path   TEXT NOT NULL,
	source BLOB,
	PRIMARY KEY (run_id, path)
) WITHOUT ROWID;

ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_pid INTEGER;
ALTER TABLE runs ADD COLUMN lease_host TEXT;
ALTER TABLE runs ADD COLUMN lease_expires INTEGER;
`,
	// 5 (SPEC §9.9): machine-wide pools. machine_slots holds one row per
	// slot taken (a lease: owner, pid, host, expiry; the run it serves is
	// informational), machine_buckets one token bucket per rated pool.
	// Neither refers to runs: a slot outlives no run but belongs to a
	// process, and pruning runs must not touch them.
	`
CREATE TABLE machine_slots (
	pool    TEXT NOT NULL,
	slot    INTEGER NOT NULL,
	owner   TEXT NOT NULL,
	pid     INTEGER NOT NULL,
	host    TEXT NOT NULL,
	run_id  TEXT NOT NULL DEFAULT '',
	expires INTEGER NOT NULL,
	PRIMARY KEY (pool, slot)
) WITHOUT ROWID;
CREATE INDEX machine_slots_owner ON machine_slots (owner);
CREATE TABLE machine_buckets (
	pool   TEXT PRIMARY KEY NOT NULL,
	tokens REAL NOT NULL,
	at     INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 6 (issue #13): invocations and checkpoints are recorded a batch to
	// a row (see invbatch.go), one row per write instead of one per
	// invocation or step; id orders the batches of a run, first and last
	// are a checkpoint batch's steps. The invocations and checkpoints
	// tables keep what earlier versions recorded, read before any batch.
	`
CREATE TABLE invocation_batches (
	id     INTEGER PRIMARY KEY,
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	invs   BLOB NOT NULL
);
CREATE INDEX invocation_batches_run ON invocation_batches (run_id, id);
CREATE TABLE checkpoint_batches (
	id     INTEGER PRIMARY KEY,
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	first  INTEGER NOT NULL,
	last   INTEGER NOT NULL,
	cps    BLOB NOT NULL
);
CREATE INDEX checkpoint_batches_run ON checkpoint_batches (run_id, id);
`,
	// 7 (SPEC §9.9, issue #14): the budgets of runs whose calls run in
	// several processes (BudgetLedger). One row per run and budget holds
	// the settled usage (id ''), one per reservation in flight its
	// estimate and its holder's lease. They go with their run.
	`
CREATE TABLE budget_ledger (
	run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	budget  TEXT NOT NULL,
	id      TEXT NOT NULL,
	tokens  INTEGER NOT NULL,
	usd     REAL NOT NULL,
	owner   TEXT NOT NULL DEFAULT '',
	pid     INTEGER NOT NULL DEFAULT 0,
	host    TEXT NOT NULL DEFAULT '',
	expires INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (run_id, budget, id)
) WITHOUT ROWID;
`,
	// 8 (issue #14): the event log of runs executed by a distributed
	// engine's workers (EventLog), a batch of JSON lines to a row,
	// numbered per run in commit order.
	`
CREATE TABLE run_events (
	run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	events BLOB NOT NULL,
	PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
`,
	// 9 (issue #13): a checkpoint batch row also holds the records of the
	// invocations that were alone in their step (invs, NULL when none;
	// invbatch.go), so that such an invocation costs no row, statement or
	// path of its own; Invocations reads them with the separate batches.
	// The partial index lets it visit only the rows that hold some, not
	// every checkpoint the run wrote (a Temporal worker reads a run's
	// invocations at every step).
	`
ALTER TABLE checkpoint_batches ADD COLUMN invs BLOB;
CREATE INDEX checkpoint_batches_invs ON checkpoint_batches (run_id, id) WHERE invs IS NOT NULL;
`,
	// 10 (issue #13): a checkpoint value may be a delta against the run's
	// inputs (base step -1, sqlite_delta.go): the step-0 checkpoint no
	// longer stores the inputs again. Nothing changes in the tables; the
	// version keeps an earlier lgx, which cannot read such a delta, from
	// opening the store.
	`-- no table changes`,
}

// checkHeader reads the schema version of the database tx reads and
// refuses, before anything is written, a file that belongs to another
// program or to a newer lgx (want is the version this lgx writes).
func checkHeader(ctx context.Context, tx *sql.Tx, path string, want int) (int, error) {
	var version, appID int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, err
	}
	switch {
	case appID != 0 && appID != applicationID:
		return 0, fmt.Errorf("%s is %w: its application id is %#x", path, ErrNotLgxStore, appID)
	case version > 0 && appID != applicationID:
		return 0, fmt.Errorf("%s is %w: schema version %d without the lgx application id", path, ErrNotLgxStore, version)
	case version > want:
		return 0, fmt.Errorf("store %s has schema version %d, newer than this lgx supports (%d): %w", path, version, want, ErrNewerSchema)
	case version == 0:
		var tables int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
			return 0, err
		}
		if tables > 0 {
			return 0, fmt.Errorf("%s is %w: it is an SQLite database with other tables", path, ErrNotLgxStore)
		}
	}
	return version, nil
}

// migrate brings db up to len(list) inside one immediate transaction, so
// two processes opening a new store at once cannot both apply a step. It
// refuses a database newer than list, or one at version 0 that already
// holds tables (someone else's database).
func migrate(ctx context.Context, db *sql.DB, path string, list []string) error {
	tx, err := db.BeginTx(ctx, nil) // immediate: the DSN sets _txlock
	if err != nil {
		return err
	}
	defer tx.Rollback()

	version, err := checkHeader(ctx, tx, path, len(list))
	if err != nil || version == len(list) {
		return err
	}
	for v := version; v < len(list); v++ {
		if _, err := tx.ExecContext(ctx, list[v]); err != nil {
			return fmt.Errorf("migrate store %s to schema version %d: %w", path, v+1, err)
		}
	}
	// PRAGMA arguments cannot be bound; both values are integers we own.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d", applicationID, len(list))); err != nil {
		return err
	}
	return tx.Commit()
}
