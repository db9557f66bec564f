package temporal

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them:
// the step cache, heartbeats, recorders and HTTP clients of the
// activities must all be closed, and so must the SDK's client and
// worker. No goroutine is ignored: with the client closed and the worker
// stopped, the SDK (v1.51.0) leaves none once goleak's retries have let
// gRPC's wind down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
