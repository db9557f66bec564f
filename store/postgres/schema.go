package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lgx-run/lgx/store"
)

// migrations is the PostgreSQL schema history. migrations[i] brings a
// database from schema version i to i+1; the version is the one row of
// lgx_schema. Never edit a released entry: append a new one. (It starts
// where the SQLite schema was at version 4, without its history; version
// 2 here is SQLite version 5.)
var migrations = []string{
	// 1: runs with their lease, invocations keyed by (run_id, path) whose
	// seq gives the finishing order (a replacement draws a new one),
	// checkpoints holding only the changed keys, subgraph sources.
	`
CREATE TABLE runs (
	id            text PRIMARY KEY,
	workflow      text NOT NULL DEFAULT '',
	file          text NOT NULL DEFAULT '',
	source        bytea,
	inputs        bytea,
	status        text NOT NULL,
	error         text NOT NULL DEFAULT '',
	started_at    bigint,
	ended_at      bigint,
	lease_owner   text,
	lease_pid     bigint,
	lease_host    text,
	lease_expires bigint
);
CREATE INDEX runs_newest ON runs (started_at DESC NULLS LAST, id DESC);

CREATE TABLE invocations (
	run_id     text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	path       text NOT NULL,
	step       integer NOT NULL,
	node       text NOT NULL,
	idx        integer NOT NULL,
	status     text NOT NULL,
	writes     bytea,
	error      text NOT NULL DEFAULT '',
	error_kind text NOT NULL DEFAULT '',
	attempts   integer NOT NULL DEFAULT 0,
	started_at bigint,
	ended_at   bigint,
	seq        bigserial NOT NULL,
	PRIMARY KEY (run_id, path)
);
CREATE INDEX invocations_order ON invocations (run_id, step, seq);

CREATE TABLE checkpoints (
	run_id  text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	step    integer NOT NULL,
	changed bytea,
	deltas  bytea,
	next    bytea,
	joins   bytea,
	at      bigint,
	PRIMARY KEY (run_id, step)
);

CREATE TABLE run_sources (
	run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	path   text NOT NULL,
	source bytea,
	PRIMARY KEY (run_id, path)
);
`,
	// 2 (SPEC §9.9, SQLite schema version 5): machine-wide pools' slot
	// leases and token buckets, shared by every process (on any machine)
	// that uses this database.
	`
CREATE TABLE machine_slots (
	pool    text NOT NULL,
	slot    integer NOT NULL,
	owner   text NOT NULL,
	pid     bigint NOT NULL,
	host    text NOT NULL,
	run_id  text NOT NULL DEFAULT '',
	expires bigint NOT NULL,
	PRIMARY KEY (pool, slot)
);
CREATE INDEX machine_slots_owner ON machine_slots (owner);
CREATE TABLE machine_buckets (
	pool   text PRIMARY KEY,
	tokens double precision NOT NULL,
	at     bigint NOT NULL
);
`,
	// 3 (SPEC §9.9, SQLite schema version 7): the budgets of runs whose
	// calls run on several workers (store.BudgetLedger): per run and
	// budget one row of settled usage (id '') and one per reservation in
	// flight, with its holder's lease.
	`
CREATE TABLE budget_ledger (
	run_id  text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	budget  text NOT NULL,
	id      text NOT NULL,
	tokens  bigint NOT NULL,
	usd     double precision NOT NULL,
	owner   text NOT NULL DEFAULT '',
	pid     bigint NOT NULL DEFAULT 0,
	host    text NOT NULL DEFAULT '',
	expires bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (run_id, budget, id)
);
`,
	// 4 (issue #14, SQLite schema version 8): the event log of runs
	// executed by workers (store.EventLog), a batch of JSON lines to a
	// row, numbered per run in commit order.
	`
CREATE TABLE run_events (
	run_id text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq    bigint NOT NULL,
	events bytea NOT NULL,
	PRIMARY KEY (run_id, seq)
);
`,
}

// migrateLock is the advisory lock key that serializes migrations of one
// database, so that two lgx processes opening a new database at once do
// not both create the tables ("lgx" + 0x01, the SQLite application id).
const migrateLock = 0x6c677801

// migrate brings the schema in the connection's search_path up to date in
// one transaction, or refuses a database of a newer lgx before writing.
func migrate(ctx context.Context, pool *pgxpool.Pool, url string) error {
	return migrateTo(ctx, pool, url, migrations)
}

func migrateTo(ctx context.Context, pool *pgxpool.Pool, url string, list []string) error {
	fail := func(err error) error { return fmt.Errorf("open store %s: %w", url, err) }
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS lgx_schema (version integer NOT NULL)`); err != nil {
		return fail(err)
	}
	var version int
	err = tx.QueryRow(ctx, `SELECT version FROM lgx_schema`).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO lgx_schema (version) VALUES (0)`); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	}
	if version > len(list) {
		return fmt.Errorf("store %s has schema version %d, newer than this lgx supports (%d): %w", url, version, len(list), store.ErrNewerSchema)
	}
	if version == len(list) {
		return nil // nothing to write: the deferred rollback ends the transaction
	}
	for i := version; i < len(list); i++ {
		if _, err := tx.Exec(ctx, list[i]); err != nil {
			return fail(fmt.Errorf("migrate schema to version %d: %w", i+1, err))
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE lgx_schema SET version = $1`, len(list)); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}
