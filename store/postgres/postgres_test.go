package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

// testURL returns the server tests use, or skips the test: the server is
// started by tools/pgtest/start.sh (CI does this in .ci/run).
func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("LGX_TEST_POSTGRES")
	if u == "" {
		t.Skip("LGX_TEST_POSTGRES is not set: start a server with eval \"$(tools/pgtest/start.sh)\" to run the PostgreSQL store tests")
	}
	return u
}

// freshSchema creates an empty schema for one test, dropped when it ends,
// and returns a URL whose connections use it.
func freshSchema(t *testing.T) string {
	t.Helper()
	return freshSchemaTB(t, testURL(t))
}

func freshSchemaTB(t testing.TB, base string) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to LGX_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("LGX_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), freshSchema(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestOpenByURL checks that importing the package makes store.Open accept
// postgres:// and postgresql:// URLs.
func TestOpenByURL(t *testing.T) {
	u := freshSchema(t)
	for _, v := range []string{u, "postgresql" + strings.TrimPrefix(u, "postgres")} {
		s, err := store.Open(context.Background(), v)
		if err != nil {
			t.Fatalf("store.Open(%s): %v", v, err)
		}
		if _, ok := s.(*Store); !ok {
			t.Errorf("store.Open(%s) = %T, want *postgres.Store", v, s)
		}
		s.Close()
	}
}

// TestReopenKeepsRuns checks that a second Open of a migrated schema
// migrates nothing and sees what the first wrote.
func TestReopenKeepsRuns(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(ctx, &store.Run{ID: "r1", Status: store.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, u)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if r, err := s.GetRun(ctx, "r1"); err != nil || r.Status != store.StatusCompleted {
		t.Fatalf("GetRun after reopen = %+v, %v", r, err)
	}
}

// TestNewerSchemaRefused checks that a database written by a newer lgx is
// refused with store.ErrNewerSchema, and left as it was.
func TestNewerSchemaRefused(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	newer := len(migrations) + 1
	if _, err := s.pool.Exec(ctx, `UPDATE lgx_schema SET version = $1`, newer); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, u)
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("Open(newer schema) = %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), "upgrade lgx") {
		t.Errorf("error %q does not say to upgrade lgx", err)
	}
}

// TestMigrateConcurrently opens one new schema from several goroutines at
// once: the advisory lock lets exactly one create the tables.
func TestMigrateConcurrently(t *testing.T) {
	u := freshSchema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), u)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

func TestOpenBadURL(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:secret@127.0.0.1:25432/x?sslmode=nonsense")
	if !errors.Is(err, store.ErrBadStoreURL) {
		t.Fatalf("Open(bad sslmode) = %v, want ErrBadStoreURL", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the password", err)
	}
}

// TestOpenUnreachable needs no server: nothing listens on port 1, so Open
// fails at once, saying which store, without the password.
func TestOpenUnreachable(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:secret@127.0.0.1:1/x?sslmode=disable")
	if err == nil {
		t.Fatal("Open(127.0.0.1:1) succeeded")
	}
	if !strings.Contains(err.Error(), "open store postgres://u:xxxxx@127.0.0.1:1/x") {
		t.Errorf("error %q does not name the store", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the password", err)
	}
}

func TestConnectTimeout(t *testing.T) {
	for u, want := range map[string]time.Duration{
		"postgres://h/db":                   connectTimeout,
		"postgres://h/db?connect_timeout=3": 3 * time.Second,
	} {
		cfg, err := poolConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.ConnConfig.ConnectTimeout; got != want {
			t.Errorf("poolConfig(%s): connect timeout %v, want %v", u, got, want)
		}
	}
}

// BenchmarkRecordInvocation measures one durable invocation record, one
// round trip and commit each.
func BenchmarkRecordInvocation(b *testing.B) {
	s, runID := benchStore(b)
	ctx := context.Background()
	writes := []byte(`{"summary":"a short summary of a document"}`)
	b.ResetTimer()
	for i := range b.N {
		inv := &store.Invocation{RunID: runID, Step: 1, Node: "summarise", Index: i, Status: store.InvocationOK, Writes: writes}
		if err := s.RecordInvocation(ctx, inv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitStep measures a step of 10 invocations and its checkpoint
// recorded in one transaction.
func BenchmarkCommitStep(b *testing.B) {
	s, runID := benchStore(b)
	ctx := context.Background()
	writes := []byte(`{"summary":"a short summary of a document"}`)
	b.ResetTimer()
	for i := range b.N {
		rec := store.StepRecord{Checkpoint: &store.Checkpoint{RunID: runID, Step: i,
			Changed: map[string]json.RawMessage{"n": json.RawMessage(strconv.Itoa(i))}, Next: []string{"summarise"}}}
		for j := range 10 {
			rec.Invocations = append(rec.Invocations, &store.Invocation{RunID: runID, Step: i, Node: "summarise", Index: j, Status: store.InvocationOK, Writes: writes})
		}
		if err := s.CommitSteps(ctx, []store.StepRecord{rec}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStore(b *testing.B) (*Store, string) {
	u := os.Getenv("LGX_TEST_POSTGRES")
	if u == "" {
		b.Skip("LGX_TEST_POSTGRES is not set")
	}
	s, err := Open(context.Background(), freshSchemaTB(b, u))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.CreateRun(context.Background(), &store.Run{ID: "bench", Status: store.StatusRunning}); err != nil {
		b.Fatal(err)
	}
	return s, "bench"
}
