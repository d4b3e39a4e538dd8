package dispatch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a goroutine outlives the tests: every attempt
// must be over, its request cancelled and its body closed, when Do returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
