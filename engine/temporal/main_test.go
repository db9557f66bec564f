package temporal

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them:
// the step cache, heartbeats, recorders and HTTP clients of the
// activities must all be closed. Only the SDK's own process-wide
// goroutines are ignored (goleakIgnores).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleakIgnores...)
}
