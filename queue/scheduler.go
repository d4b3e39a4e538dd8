package queue

import (
	"context"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"time"

	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/storage"
)

// maxLeaseBatch bounds how many tasks one scan of the schedule leases.
const maxLeaseBatch = 256

// maxScan bounds the due tasks one scan passes over because their host is
// at its limit; the scan resumes when a busy host frees a slot.
const maxScan = 4096

// lease is the scheduler's in-memory claim that a worker runs a task now.
// Its host is guarded by Queue.mu, its cancel and cancelled by its own mu,
// which is taken after Queue.mu when both are: a worker registers and
// checks its attempt's cancel without contending for the queue's lock.
type lease struct {
	task *Task  // the task as stored when it was leased
	host string // the task's host:port, when PerHost is set

	mu        sync.Mutex
	cancel    context.CancelFunc // aborts the attempt; nil until it starts
	cancelled bool               // a user cancelled the task in flight
}

// begin registers cancel as the attempt's, for Cancel and Close to call,
// and reports whether a user cancelled the task before it started. It
// calls cancel itself if abort is done, which means that Close has aborted
// the attempts already: abortAttempts calls the cancels registered before.
func (l *lease) begin(cancel context.CancelFunc, abort context.Context) (cancelled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancel = cancel
	if abort.Err() != nil {
		cancel()
	}
	return l.cancelled
}

// userCancelled marks the task cancelled by a user and aborts its attempt,
// if it has begun.
func (l *lease) userCancelled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancelled = true
	if l.cancel != nil {
		l.cancel()
	}
}

// abort aborts the attempt, if it has begun.
func (l *lease) abort() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
	}
}

// isCancelled reports whether a user cancelled the task while leased.
func (l *lease) isCancelled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cancelled
}

// schedule leases due tasks to the workers until ctx is done. It sleeps
// until a task is enqueued or rescheduled, a worker slot frees up, or the
// next run time comes; it never polls.
func (q *Queue) schedule(ctx context.Context) error {
	for {
		// Wait for at least one free worker, then take all that are free.
		select {
		case <-q.slots:
		case <-ctx.Done():
			return nil
		}
		n := 1
		// Under load workers free up one at a time, and a scan per worker
		// costs a read transaction each: yield once, so that the workers
		// ready to run now finish and return their slots, and one scan
		// serves them all (about 20 tasks a scan rather than one, in the
		// bench). When nothing else is ready to run, this returns at once.
		runtime.Gosched()
	more:
		for n < maxLeaseBatch {
			select {
			case <-q.slots:
				n++
			default:
				break more
			}
		}

		// Lease what is due; give back the slots left unused.
		leased, next, err := q.leaseDue(n)
		for range n - len(leased) {
			q.slots <- struct{}{}
		}
		for _, l := range leased {
			q.work <- l // never blocks: work holds as many as there are slots
		}
		if err != nil {
			q.log.Error("scan schedule", slog.Any(keyError, err))
			q.reschedule(nil)
			next = ptr(q.clock.Now().Add(time.Second))
		} else if len(leased) == n {
			continue // there may be more due right now
		}

		// Sleep until something may have become due.
		var timer Timer
		var timeout <-chan time.Time
		if next != nil {
			timer = q.clock.NewTimer(next.Sub(q.clock.Now()))
			timeout = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-q.wake:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// leaseDue leases up to n due tasks that are not leased yet and returns
// them, with the next run time when fewer were due.
//
// The scan runs under q.mu, and a worker commits a task's outcome before it
// drops the lease under q.mu: so a scan either sees the lease or reads a
// snapshot that already has the outcome, and a finished task is never
// leased again.
func (q *Queue) leaseDue(n int) ([]*lease, *time.Time, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return nil, nil, nil
	}

	now := q.clock.Now()
	if now.Before(q.pausedUntil) {
		// Outcomes cannot be stored now: lease nothing until the pause
		// ends (see storeHealth).
		return nil, ptr(q.pausedUntil), nil
	}
	opts := storage.DueOptions{
		Max:  n,
		Skip: func(id ID) bool { _, ok := q.leases[id]; return ok },
		From: q.scanFrom,
	}
	var hosts []string   // host of each accepted task, in order
	var passed []byte    // schedule key of the first task passed over
	var retry *time.Time // when a rate-limited host has a token again
	if q.opts.PerHost > 0 || q.opts.PerHostRate > 0 {
		opts.MaxScan = n + maxScan
		opts.Accept = func(t *Task) bool {
			h := hostOf(t.URL)
			ok, at := q.admit(h, now)
			if !ok {
				if passed == nil {
					passed = storage.ScheduleKey(*t.NextAttemptAt, t.ID)
				}
				if at != nil && (retry == nil || at.Before(*retry)) {
					retry = at
				}
				return false
			}
			hosts = append(hosts, h)
			return true
		}
	}
	var due []*Task
	var next *time.Time
	err := q.store.View(func(tx *storage.Tx) error {
		var err error
		due, next, err = tx.Due(now, opts)
		return err
	})
	if err != nil {
		for _, h := range hosts {
			q.release(h)
		}
		return nil, nil, err
	}

	// The next scan starts at the first task passed over, or after the
	// last one leased: everything before that point is leased.
	switch {
	case passed != nil:
		q.scanFrom = passed
	case len(due) > 0:
		last := due[len(due)-1]
		q.scanFrom = storage.ScheduleKey(*last.NextAttemptAt, last.ID)
	}
	if retry != nil && (next == nil || retry.Before(*next)) {
		next = retry
	}
	leased := make([]*lease, len(due))
	all := make([]lease, len(due)) // one allocation for the scan's leases
	for i, t := range due {
		leased[i] = &all[i]
		leased[i].task = t
		if hosts != nil {
			leased[i].host = hosts[i]
		}
		q.leases[t.ID] = leased[i]
	}
	return leased, next, nil
}

// hostGate holds a host's attempts in flight and its rate tokens.
type hostGate struct {
	inFlight int
	tokens   float64
	filled   time.Time // when tokens was last topped up
}

// admit reports whether an attempt to host may start now, and takes its
// place if so. When the rate limit says no, at is when a token is due.
// Callers hold q.mu.
func (q *Queue) admit(host string, now time.Time) (ok bool, at *time.Time) {
	g := q.hosts[host]
	if g == nil {
		g = &hostGate{tokens: q.burst(), filled: now}
		q.hosts[host] = g
	}
	if q.opts.PerHost > 0 && g.inFlight >= q.opts.PerHost {
		return false, nil
	}
	if rate := q.opts.PerHostRate; rate > 0 {
		if elapsed := now.Sub(g.filled); elapsed > 0 {
			g.tokens = min(q.burst(), g.tokens+elapsed.Seconds()*rate)
			g.filled = now
		}
		if g.tokens < 1 {
			wait := time.Duration((1 - g.tokens) / rate * float64(time.Second))
			return false, ptr(now.Add(wait))
		}
		g.tokens--
	}
	g.inFlight++
	return true, nil
}

// burst is how many attempts a rate-limited host may take at once.
func (q *Queue) burst() float64 { return max(1, q.opts.PerHostRate) }

// release gives back a host's place taken by admit, and reports whether the
// host was at its concurrency limit. Callers hold q.mu.
func (q *Queue) release(host string) (wasFull bool) {
	g := q.hosts[host]
	if g == nil {
		return false
	}
	wasFull = q.opts.PerHost > 0 && g.inFlight >= q.opts.PerHost
	g.inFlight--
	full := g.tokens >= q.burst() ||
		q.clock.Now().Sub(g.filled).Seconds()*q.opts.PerHostRate >= q.burst()
	if g.inFlight <= 0 && full {
		delete(q.hosts, host) // idle and full: nothing to remember
	}
	return wasFull
}

// unlease drops the lease on id; the task's outcome must be on disk.
func (q *Queue) unlease(id ID) {
	q.mu.Lock()
	wake := q.dropLease(id)
	q.mu.Unlock()
	if wake {
		q.notify()
	}
}

// dropLease is unlease under q.mu, and reports whether to wake the
// scheduler.
func (q *Queue) dropLease(id ID) (wake bool) {
	if l := q.leases[id]; l != nil && l.host != "" {
		// A host at its limit may have due tasks the scheduler passed over.
		wake = q.release(l.host)
	}
	delete(q.leases, id)
	return wake
}

// reschedule tells the scheduler that a task became due at at (nil: at
// some time that may be before its scan position) and wakes it.
//
// The scheduler resumes each scan where the last one stopped, since the
// index entries before that point are leased tasks. An entry written
// behind that point (an enqueue whose commit raced the scan, a task whose
// lease dropped without its entry moving) would be missed, so it rewinds
// the scan to the start. Both run under q.mu, so a rewind cannot slip in
// between a scan's read and its new position.
func (q *Queue) reschedule(at *time.Time) {
	q.mu.Lock()
	q.rewind(at)
	q.mu.Unlock()
	q.notify()
}

// rewind is reschedule under q.mu, without waking the scheduler.
func (q *Queue) rewind(at *time.Time) {
	if q.scanFrom != nil {
		if at == nil || string(storage.ScheduleKey(*at, ID{})[:8]) <= string(q.scanFrom[:8]) {
			q.scanFrom = nil
		}
	}
}

// hostOf returns the host:port a URL's request goes to, the unit of the
// per-host limit.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redact.URL(raw) // shown in events and metrics
	}
	if u.Port() == "" {
		if u.Scheme == "https" {
			return u.Hostname() + ":443"
		}
		return u.Hostname() + ":80"
	}
	return u.Host
}

func ptr[T any](v T) *T { return &v }
