package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestPostgresScripts runs testdata/postgres/*.txtar against the PostgreSQL
// server LGX_TEST_POSTGRES names (.ci/run starts one with
// tools/pgtest/start.sh). Each script gets an empty schema of its own,
// dropped when it ends, as $PGURL.
func TestPostgresScripts(t *testing.T) {
	base := os.Getenv("LGX_TEST_POSTGRES")
	if base == "" {
		t.Skip("LGX_TEST_POSTGRES is not set: start a server with eval \"$(tools/pgtest/start.sh)\" to run the PostgreSQL scenarios")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/postgres",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			if err := scriptEnv(env); err != nil {
				return err
			}
			u, err := pgSchema(env, base)
			if err != nil {
				return err
			}
			env.Setenv("PGURL", u)
			return nil
		},
		Cmds: scriptCmds(),
	})
}

// pgSchema creates an empty schema, dropped when the script ends, and
// returns base with its search_path set to it.
func pgSchema(env *testscript.Env, base string) (string, error) {
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "cli_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to LGX_TEST_POSTGRES: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", fmt.Errorf("create schema: %w", err)
	}
	env.Defer(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			env.T().Log("drop schema:", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			env.T().Log("drop schema:", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("LGX_TEST_POSTGRES: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
