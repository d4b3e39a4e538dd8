package storage

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: Close must stop
// the committer of every store.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
