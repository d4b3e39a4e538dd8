package queue

import (
	"bufio"
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Clock tells the time and makes timers. The queue asks it wherever time
// decides behaviour (run times, backoff, the scheduler's sleep), so tests
// can move time by hand instead of sleeping.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C returns the channel on which the time is sent when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing and reports whether it was
	// still pending.
	Stop() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// idSource makes task IDs: ULIDs whose random part increases within a
// millisecond, so IDs made by one process sort in the order they were made.
type idSource struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

func newIDSource() *idSource {
	// Each ID made in the same millisecond as the last draws a random
	// increment: read the system's randomness 4 KiB at a time rather than
	// with a system call per ID.
	return &idSource{entropy: ulid.Monotonic(bufio.NewReader(rand.Reader), 0)}
}

// next returns a new ID for time t.
func (s *idSource) next(t time.Time) (ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ulid.New(ulid.Timestamp(t), s.entropy)
}
