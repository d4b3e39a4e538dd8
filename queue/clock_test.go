package queue

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	added  chan struct{} // receives a value each time a timer is made
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, added: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	select {
	case c.added <- struct{}{}:
	default:
	}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock forward by d and fires the timers now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

// waitForTimer blocks until at least one timer is pending, or fails the
// test after 10s.
func (c *fakeClock) waitForTimer(t testing.TB) {
	t.Helper()
	for {
		c.mu.Lock()
		n := len(c.timers)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-c.added:
		case <-time.After(10 * time.Second):
			t.Fatal("no timer was made within 10s")
		}
	}
}

// waitForTimerAt blocks until a timer is pending for exactly at, or fails
// the test after 10s. A test that moves the clock to a task's run time
// waits for the scheduler's timer first: the scheduler measures its sleep
// from Now, so a clock moved before the timer is made would put the timer
// that much too late.
func (c *fakeClock) waitForTimerAt(t testing.TB, at time.Time) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		found := false
		for _, tm := range c.timers {
			found = found || tm.at.Equal(at)
		}
		c.mu.Unlock()
		if found {
			return
		}
		select {
		case <-c.added:
		case <-deadline:
			t.Fatalf("no timer for %v was made within 10s", at)
		}
	}
}

// Set moves the clock to t, which must not be before its current time.
func (c *fakeClock) Set(t time.Time) { c.Advance(t.Sub(c.Now())) }

type fakeTimer struct {
	clock *fakeClock
	at    time.Time
	ch    chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	for i, o := range t.clock.timers {
		if o == t {
			t.clock.timers = append(t.clock.timers[:i], t.clock.timers[i+1:]...)
			return true
		}
	}
	return false
}
