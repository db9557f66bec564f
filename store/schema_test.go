package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawDB opens path with the driver alone, bypassing OpenSQLite, to build
// or inspect files the way another program (or an older lgx) would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pragmaInt(t *testing.T, db *sql.DB, name string) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func exec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestOpenSQLiteMigrates(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string) // builds the file before OpenSQLite
	}{
		{"no file", func(t *testing.T, path string) {}},
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"v0 database", func(t *testing.T, path string) {
			db := rawDB(t, path)
			exec(t, db, "PRAGMA page_size = 8192")
			exec(t, db, "VACUUM") // writes a header: a real, empty v0 database
			db.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lgx.db")
			tc.make(t, path)
			s, err := OpenSQLite(path)
			if err != nil {
				t.Fatalf("OpenSQLite: %v", err)
			}
			if err := s.CreateRun(context.Background(), &Run{ID: "r", Status: StatusRunning}); err != nil {
				t.Fatalf("CreateRun after migration: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db := rawDB(t, path)
			if v := pragmaInt(t, db, "user_version"); v != len(migrations) {
				t.Errorf("user_version = %d, want %d", v, len(migrations))
			}
			if id := pragmaInt(t, db, "application_id"); id != applicationID {
				t.Errorf("application_id = %#x, want %#x", id, applicationID)
			}
			var mode string
			if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v; want wal (persistent)", mode, err)
			}
		})
	}
}

func TestOpenSQLiteAtCurrentVersionKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	ctx := context.Background()
	for i, id := range []string{"first", "second"} {
		s, err := OpenSQLite(path)
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		if err := s.CreateRun(ctx, &Run{ID: id, Status: StatusRunning}); err != nil {
			t.Fatalf("open #%d: CreateRun: %v", i+1, err)
		}
		runs, err := s.ListRuns(ctx, 0)
		if err != nil || len(runs) != i+1 {
			t.Fatalf("open #%d: ListRuns = %d runs, %v; want %d", i+1, len(runs), err, i+1)
		}
		s.Close()
	}
}

func TestOpenSQLiteRefuses(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string
		is   error
		mode string // journal mode the file must keep, if it has one
	}{
		{"newer schema", func(t *testing.T, path string) {
			s, err := OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			db := rawDB(t, path)
			exec(t, db, "PRAGMA user_version = 99")
			db.Close()
		}, "has schema version 99, newer than this lgx supports", ErrNewerSchema, "wal"},
		{"newer schema in rollback mode", func(t *testing.T, path string) {
			db := rawDB(t, path)
			exec(t, db, "CREATE TABLE future (x INTEGER)")
			exec(t, db, fmt.Sprintf("PRAGMA application_id = %d", applicationID))
			exec(t, db, "PRAGMA user_version = 99")
			db.Close()
		}, "has schema version 99, newer than this lgx supports", ErrNewerSchema, "delete"},
		{"garbage file", func(t *testing.T, path string) {
			junk := []byte(strings.Repeat("this is not a database\n", 400))
			if err := os.WriteFile(path, junk, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not an lgx store: ", ErrNotLgxStore, ""},
		{"another program's database", func(t *testing.T, path string) {
			db := rawDB(t, path)
			exec(t, db, "CREATE TABLE contacts (name TEXT)")
			db.Close()
		}, "is not an lgx store: it is an SQLite database with other tables", ErrNotLgxStore, "delete"},
		{"another application id", func(t *testing.T, path string) {
			db := rawDB(t, path)
			exec(t, db, "PRAGMA application_id = 42")
			exec(t, db, "PRAGMA user_version = 1")
			db.Close()
		}, "is not an lgx store: its application id is 0x2a", ErrNotLgxStore, "delete"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory, not an lgx store", ErrNotLgxStore, ""},
		{"versioned without application id", func(t *testing.T, path string) {
			db := rawDB(t, path)
			exec(t, db, "PRAGMA user_version = 1")
			db.Close()
		}, "is not an lgx store: schema version 1 without the lgx application id", ErrNotLgxStore, "delete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lgx.db")
			tc.make(t, path)
			before, _ := os.ReadFile(path)
			s, err := OpenSQLite(path)
			if err == nil {
				s.Close()
				t.Fatalf("OpenSQLite succeeded, want error containing %q", tc.want)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error = %q, want it to name %s and contain %q", err, path, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error does not wrap %v", tc.is)
			}
			// Refused before anything is written: same bytes, same journal
			// mode (switching to WAL rewrites the header), no files beside.
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("OpenSQLite modified a file it refused")
			}
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
				t.Errorf("the directory holds %d entries after the refusal, want 1", len(ents))
			}
			if tc.mode != "" {
				var mode string
				if err := rawDB(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != tc.mode {
					t.Errorf("journal_mode after the refusal = %q, %v; want %q", mode, err, tc.mode)
				}
			}
		})
	}
}

func TestOpenSQLiteMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	s, err := OpenSQLite(filepath.Join(dir, "lgx.db"))
	if err == nil {
		s.Close()
		t.Fatal("OpenSQLite in a missing directory succeeded")
	}
	if want := "directory " + dir + " does not exist"; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	if !errors.Is(err, ErrNoStoreDir) {
		t.Errorf("error = %q does not wrap ErrNoStoreDir (the CLI's exit 2)", err)
	}
}

func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	path2 := filepath.Join(t.TempDir(), "steps.db")
	db := rawDB(t, "file:"+path2+"?_txlock=immediate")

	v1 := []string{"CREATE TABLE a (x INTEGER)"}
	v2 := append(v1[:1:1], "ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z INTEGER)")
	bad := append(v2[:2:2], "CREATE TABLE c (q INTEGER); CREATE TABLE a (dup INTEGER)")

	if err := migrate(ctx, db, path2, v1); err != nil {
		t.Fatalf("migrate to v1: %v", err)
	}
	if v := pragmaInt(t, db, "user_version"); v != 1 {
		t.Fatalf("user_version = %d, want 1", v)
	}
	exec(t, db, "INSERT INTO a (x) VALUES (7)")
	if err := migrate(ctx, db, path2, v2); err != nil {
		t.Fatalf("migrate v1 -> v2: %v", err)
	}
	var x int
	var y sql.NullString
	if err := db.QueryRow("SELECT x, y FROM a").Scan(&x, &y); err != nil || x != 7 || y.Valid {
		t.Fatalf("row after v2 = %d, %v, %v; want 7, NULL", x, y, err)
	}
	if v := pragmaInt(t, db, "user_version"); v != 2 {
		t.Fatalf("user_version = %d, want 2", v)
	}
	// A failing step rolls back entirely: no table c, still version 2.
	err := migrate(ctx, db, path2, bad)
	if err == nil || !strings.Contains(err.Error(), "schema version 3") {
		t.Fatalf("migrate with a failing step = %v, want an error naming schema version 3", err)
	}
	if v := pragmaInt(t, db, "user_version"); v != 2 {
		t.Errorf("user_version after failed step = %d, want 2", v)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'c'").Scan(&n); err != nil || n != 0 {
		t.Errorf("table c exists after a failed migration (%d, %v)", n, err)
	}
	// Re-running at the current version is a no-op.
	if err := migrate(ctx, db, path2, v2); err != nil {
		t.Errorf("migrate at current version: %v", err)
	}
}

// TestOpenSQLiteConcurrently opens one new file from several stores at
// once, as two `lgx run`s started together would: exactly one migrates.
func TestOpenSQLiteConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*SQLite, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = OpenSQLite(path)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open #%d: %v", i, errs[i])
			continue
		}
		if err := stores[i].CreateRun(context.Background(), &Run{ID: string(rune('a' + i)), Status: StatusRunning}); err != nil {
			t.Errorf("store #%d CreateRun: %v", i, err)
		}
		stores[i].Close()
	}
}

func TestDefaultPath(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		name         string
		lgxHome, xdg string
		home         string
		want         string
	}{
		{"LGX_HOME wins", filepath.Join(tmp, "lgxhome"), filepath.Join(tmp, "xdg"), filepath.Join(tmp, "home"),
			filepath.Join(tmp, "lgxhome", "lgx.db")},
		{"XDG_STATE_HOME", "", filepath.Join(tmp, "xdg2"), filepath.Join(tmp, "home"),
			filepath.Join(tmp, "xdg2", "lgx", "lgx.db")},
		{"home", "", "", filepath.Join(tmp, "home3"),
			filepath.Join(tmp, "home3", ".local", "state", "lgx", "lgx.db")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LGX_HOME", tc.lgxHome)
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			t.Setenv("HOME", tc.home)
			got, err := DefaultPath()
			if err != nil {
				t.Fatalf("DefaultPath: %v", err)
			}
			if got != tc.want {
				t.Errorf("DefaultPath = %s, want %s", got, tc.want)
			}
			fi, err := os.Stat(filepath.Dir(got))
			if err != nil {
				t.Fatalf("directory not created: %v", err)
			}
			if perm := fi.Mode().Perm(); perm != 0o700 {
				t.Errorf("directory mode = %o, want 700", perm)
			}
		})
	}
}

// TestOpenSQLiteUpgradesV1 opens a store written by the first schema
// version, with data, and checks it is upgraded in place and still reads.
func TestOpenSQLiteUpgradesV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO runs (id, status, started_at) VALUES ('old', 'failed', 1700000000000000000)`)
	exec(t, db, `INSERT INTO checkpoints (run_id, step, changed, next) VALUES ('old', 0, '{"k": [1, 2]}', '["a"]')`)
	db.Close()

	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite on a v1 store: %v", err)
	}
	defer s.Close()
	cps, err := s.Checkpoints(ctx, "old")
	if err != nil || len(cps) != 1 || string(cps[0].Changed["k"]) != "[1, 2]" || len(cps[0].Next) != 1 {
		t.Fatalf("v1 checkpoint after upgrade = %v, %v", cps, err)
	}
	r, err := s.GetRun(ctx, "old")
	if err != nil || r.Status != StatusFailed || r.StartedAt.UnixNano() != 1700000000000000000 {
		t.Fatalf("v1 run after upgrade = %+v, %v", r, err)
	}
	if v := pragmaInt(t, s.db, "user_version"); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
}

// TestTwoStoresOneFile writes from two stores on one file at once, as two
// lgx processes do: SQLite's lock plus busy_timeout serialize them.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	a, b := openStore(t, path), openStore(t, path)
	const n = 150
	var wg sync.WaitGroup
	errs := make(chan error, 2*n+2)
	for _, st := range []struct {
		s  *SQLite
		id string
	}{{a, "ra"}, {b, "rb"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.s.CreateRun(ctx, &Run{ID: st.id, Status: StatusRunning}); err != nil {
				errs <- err
				return
			}
			for i := range n {
				if err := st.s.RecordInvocation(ctx, &Invocation{RunID: st.id, Step: i, Node: "n", Index: -1, Status: InvocationOK}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("write: %v", err)
	}
	for _, id := range []string{"ra", "rb"} {
		invs, err := a.Invocations(ctx, id) // a sees b's writes too
		if err != nil || len(invs) != n {
			t.Errorf("run %s: %d invocations, %v; want %d", id, len(invs), err, n)
		}
	}
}

// TestOpenSQLiteUpgradesV3 opens a store of schema version 3 holding
// invocations (one re-recorded, so finishing order differs from key order)
// and checks version 4 gives each the path of its (step, node, idx), keeps
// the order, and then takes paths, subgraph sources and leases.
func TestOpenSQLiteUpgradesV3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:3]); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO runs (id, workflow, status, started_at) VALUES ('old', 'wf', 'running', 1700000000000000000)`)
	exec(t, db, `INSERT INTO invocations (run_id, step, node, idx, status, writes, attempts) VALUES
		('old', 1, 'b', -1, 'ok', '{"b":1}', 1),
		('old', 1, 'a', 0, 'ok', '{"a":0}', 1),
		('old', 2, 'each', 3, 'failed', NULL, 2),
		('old', 1, 'a', 1, 'ok', '{"a":1}', 1)`)
	exec(t, db, `INSERT OR REPLACE INTO invocations (run_id, step, node, idx, status, writes, attempts) VALUES
		('old', 1, 'b', -1, 'ok', '{"b":"again"}', 2)`)
	exec(t, db, `INSERT INTO checkpoints (run_id, step, changed, next) VALUES ('old', 1, '{"k": 1}', '["each"]')`)
	db.Close()

	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite on a v3 store: %v", err)
	}
	defer s.Close()
	invs, err := s.Invocations(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, inv := range invs {
		got = append(got, fmt.Sprintf("%s=%s", inv.Path, inv.Writes))
	}
	want := []string{`1/a[0]={"a":0}`, `1/a[1]={"a":1}`, `1/b={"b":"again"}`, `2/each[3]=`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("invocations after upgrade = %v, want %v", got, want)
	}
	// Re-recording an upgraded record by its derived path replaces it;
	// another path with the same step, node and index is a new record.
	for _, inv := range []*Invocation{
		{RunID: "old", Step: 1, Node: "b", Index: -1, Status: InvocationOK, Writes: json.RawMessage(`{"b":3}`)},
		{RunID: "old", Path: "1/b/1/b", Step: 1, Node: "b", Index: -1, Status: InvocationOK},
	} {
		if err := s.RecordInvocation(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	if invs, err := s.Invocations(ctx, "old"); err != nil || len(invs) != 5 || invs[2].Path != "1/b" || string(invs[2].Writes) != `{"b":3}` {
		t.Errorf("after re-recording: %d invocations, %v", len(invs), err)
	}
	r, err := s.GetRun(ctx, "old")
	if err != nil || r.Lease != nil || r.Status != StatusStale || r.Subgraphs != nil {
		t.Fatalf("v3 run after upgrade = %+v, %v; want no lease, stale, no subgraphs", r, err)
	}
	if err := s.AcquireLease(ctx, "old", Lease{Owner: "o", PID: os.Getpid(), Host: Hostname(), Expires: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("AcquireLease on an upgraded run: %v", err)
	}
	if err := s.CreateRun(ctx, &Run{ID: "new", Status: StatusRunning, Subgraphs: map[string][]byte{"/c.yaml": []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.GetRun(ctx, "new"); err != nil || string(r.Subgraphs["/c.yaml"]) != "c" {
		t.Errorf("subgraphs after upgrade: %+v, %v", r, err)
	}
	if v := pragmaInt(t, s.db, "user_version"); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
}

// TestOpenSQLiteReadOnlyOldSchema: a read-only store cannot be migrated,
// so one at an older version is refused with a message saying so.
func TestOpenSQLiteReadOnlyOldSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:3]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before, _ := os.ReadFile(path)
	s, err := OpenSQLiteReadOnly(path)
	if err == nil {
		s.Close()
		t.Fatal("OpenSQLiteReadOnly on a v3 store succeeded")
	}
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), "schema version 3") {
		t.Errorf("error = %v, want ErrReadOnly naming schema version 3", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the store changed")
	}
}

// TestOpenSQLiteReadOnlyVersion9: a read-only store at version 9 opens
// and reads: version 10 changed no table.
func TestOpenSQLiteReadOnlyVersion9(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:9]); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenSQLiteReadOnly(path)
	if err != nil {
		t.Fatalf("OpenSQLiteReadOnly on a v9 store: %v", err)
	}
	defer s.Close()
	if _, err := s.ListRuns(ctx, 10); err != nil {
		t.Errorf("ListRuns: %v", err)
	}
}
