// Package temporaltest connects integration tests to the Temporal dev server
// that tools/devtemporal/start.sh runs (and .ci/run starts for CI).
//
// The server's address comes from LGX_TEST_TEMPORAL (host:port). Without it,
// tests that need the server skip with a reason, so `go test ./...` stays
// green on a machine that has none:
//
//	eval "$(tools/devtemporal/start.sh)"
//	go test ./internal/temporaltest
//	tools/devtemporal/stop.sh "$DEVTEMPORAL_DATA"
package temporaltest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// EnvAddress names the environment variable holding the dev server's
// frontend address.
const EnvAddress = "LGX_TEST_TEMPORAL"

// Namespace is the namespace the dev server registers at start.
const Namespace = "default"

// dialTimeout bounds Dial's first contact with the server: a server that
// is down fails the test in seconds rather than at the test binary's timeout.
const dialTimeout = 10 * time.Second

// Address returns the dev server's host:port from LGX_TEST_TEMPORAL, or skips
// the test when the variable is unset.
func Address(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddress)
	if addr == "" {
		t.Skip(EnvAddress + " not set: no Temporal dev server (start one with: eval \"$(tools/devtemporal/start.sh)\")")
	}
	return addr
}

// Dial connects a client to the dev server in Namespace (skipping like
// Address without one) and closes it when the test ends. A set address that
// does not answer within dialTimeout fails the test: the variable says a
// server should be there.
func Dial(t testing.TB) client.Client {
	t.Helper()
	addr := Address(t)
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  addr,
		Namespace: Namespace,
		Logger:    quietLogger(),
	})
	if err != nil {
		t.Fatalf("dial Temporal at %s (%s): %v", addr, EnvAddress, err)
	}
	t.Cleanup(c.Close)
	return c
}

// quietLogger keeps the SDK's routine info lines (worker started, stopped)
// out of test output; warnings and errors still reach stderr.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
