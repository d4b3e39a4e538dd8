package queue

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/storage"
)

// Outcome says how an attempt ended, as an AttemptEvent reports it.
type Outcome string

// The outcomes of an attempt.
const (
	// OutcomeSucceeded: the task succeeded with this attempt.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeRetrying: the attempt failed and the task will be tried again.
	OutcomeRetrying Outcome = "retrying"
	// OutcomeFailed: the task failed with this attempt, for a permanent
	// error or because no attempt is left.
	OutcomeFailed Outcome = "failed"
	// OutcomeCancelled: a user cancelled the task while the attempt ran;
	// the attempt is kept in the history and the task keeps the state the
	// user gave it: cancelled, or pending if they retried it since.
	OutcomeCancelled Outcome = "cancelled"
	// OutcomeStoreError: the outcome could not be stored. The task is left
	// as it was on disk and runs again.
	OutcomeStoreError Outcome = "store_error"
)

// AttemptEvent describes one attempt whose outcome has been committed (or
// failed to be: OutcomeStoreError). See Options.OnAttempt.
type AttemptEvent struct {
	// TaskID is the task's ID.
	TaskID ID
	// Method is the task's HTTP method.
	Method string
	// URL is the task's URL for logs: its userinfo, and the values of query
	// parameters named like credentials (token, api_key, ...), shown as
	// "xxxxx".
	URL string
	// Host is the host:port the request went to, with the scheme's port
	// when the URL names none.
	Host string
	// Attempt numbers the attempt: 1 for the task's first.
	Attempt int
	// Outcome says how the attempt ended.
	Outcome Outcome
	// Final reports whether the task is final after this attempt: it
	// succeeded, failed or was cancelled.
	Final bool
	// StatusCode is the HTTP status of the reply, or 0 when none came.
	StatusCode int
	// StartedAt is when the attempt started.
	StartedAt time.Time
	// Duration is how long the attempt took, from building the request
	// to reading the reply.
	Duration time.Duration
	// Error says why the attempt failed; nil when it succeeded. Its Kind
	// is one of those of Error, or "cancelled".
	Error *Error
	// Result is the endpoint's retval when the task succeeded, else nil.
	// It is shared: do not modify it.
	Result json.RawMessage
	// NextAttemptAt is when the next attempt may start, for
	// OutcomeRetrying; else nil.
	NextAttemptAt *time.Time
	// Err is the store's error, for OutcomeStoreError; else nil.
	Err error
}

// EnqueueEvent describes one committed enqueue (a call to Enqueue or
// EnqueueMany). See Options.OnEnqueue.
type EnqueueEvent struct {
	// Tasks is the number of new tasks stored.
	Tasks int
	// Existing is the number of specs whose idempotency key matched a
	// kept task, for which nothing was stored.
	Existing int
}

// maxPendingEvents bounds the events waiting for the reporter. Beyond it
// new events are dropped and counted (see Queue.DroppedEvents) rather than
// held in memory without bound or allowed to stall commits.
const maxPendingEvents = 1 << 16

// maxLogResult bounds the bytes of a task's result in its log line.
const maxLogResult = 100

// event is one thing to report: an enqueue, or an attempt's outcome.
type event struct {
	enqueue    *EnqueueEvent // set for an enqueue; the rest is then unset
	task       *Task         // the task as leased
	att        *Attempt
	stored     *Task // the task as the attempt left it on disk
	superseded bool  // a user changed the task while the attempt ran
	err        error // the store's error, if the outcome was not stored
}

// reporter delivers events on its own goroutine, so that the store's
// committer, which produces most of them, never waits for a log handler
// or an observer. It is safe for concurrent use.
type reporter struct {
	deliver func(*event)

	mu      sync.Mutex
	pending []*event
	spare   []*event
	closed  bool
	wake    chan struct{} // has a value when pending may be non-empty
	done    chan struct{} // closed when the goroutine has exited
	dropped atomic.Uint64
}

// newReporter starts a reporter that calls deliver for each event, in the
// order they were pushed.
func newReporter(deliver func(*event)) *reporter {
	r := &reporter{deliver: deliver, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

// push queues ev without blocking. It drops ev when too many events wait,
// or when the reporter is closed.
func (r *reporter) push(ev *event) {
	r.mu.Lock()
	if r.closed || len(r.pending) >= maxPendingEvents {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	r.pending = append(r.pending, ev)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run delivers events until the reporter is closed and none are left.
func (r *reporter) run() {
	defer close(r.done)
	for range r.wake {
		for {
			r.mu.Lock()
			batch := r.pending
			r.pending, r.spare = r.spare[:0], nil
			closed := r.closed
			r.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			for i, ev := range batch {
				r.deliver(ev)
				batch[i] = nil
			}
			r.mu.Lock()
			if r.spare == nil {
				r.spare = batch[:0]
			}
			r.mu.Unlock()
		}
	}
}

// close delivers the events already queued, then stops the goroutine.
// Later pushes are dropped. It is safe to call more than once.
func (r *reporter) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	<-r.done
}

// DroppedEvents returns how many events were not delivered to OnEnqueue,
// OnAttempt and the log because too many were waiting for a slow observer
// or log handler (more than 65,536). Zero means none were lost.
func (q *Queue) DroppedEvents() uint64 {
	return q.report.dropped.Load()
}

// deliver reports one event to the log, the observers and the test hooks.
// It runs on the reporter's goroutine.
func (q *Queue) deliver(ev *event) {
	if ev.enqueue != nil {
		if q.opts.OnEnqueue != nil {
			q.opts.OnEnqueue(*ev.enqueue)
		}
		return
	}
	e := attemptEvent(ev, &q.urlViews)
	q.logAttempt(&e)
	if q.opts.OnAttempt != nil {
		q.opts.OnAttempt(e)
	}
	if q.hooks.afterAttempt != nil && ev.err == nil {
		q.hooks.afterAttempt(ev.task.ID, ev.att)
	}
}

// urlViews remembers what events show of the URLs of recent tasks: most
// tasks of a queue call a few endpoints, and each view of a URL parses it.
// It is used on the reporter's goroutine only.
type urlViews struct{ m map[string]urlView }

// urlView is what an AttemptEvent shows of a task's URL.
type urlView struct{ display, host string }

// maxURLViews bounds the URLs remembered; past it they are forgotten.
const maxURLViews = 256

func (c *urlViews) get(raw string) urlView {
	if v, ok := c.m[raw]; ok {
		return v
	}
	if c.m == nil || len(c.m) >= maxURLViews {
		c.m = make(map[string]urlView)
	}
	v := urlView{display: redact.Display(raw), host: hostOf(raw)}
	c.m[raw] = v
	return v
}

// attemptEvent describes the outcome of an attempt for observers.
func attemptEvent(ev *event, urls *urlViews) AttemptEvent {
	t, att := ev.task, ev.att
	u := urls.get(t.URL)
	e := AttemptEvent{
		TaskID:     t.ID,
		Method:     t.Method,
		URL:        u.display,
		Host:       u.host,
		Attempt:    att.N,
		StatusCode: att.StatusCode,
		StartedAt:  att.StartedAt,
		Duration:   time.Duration(att.Latency),
		Error:      att.Error,
	}
	switch {
	case ev.err != nil:
		e.Outcome, e.Err = OutcomeStoreError, ev.err
	case ev.superseded || att.Outcome == "cancelled":
		e.Outcome, e.Final = OutcomeCancelled, ev.stored.State.Final()
	case ev.stored.State == storage.Succeeded:
		e.Outcome, e.Final, e.Result = OutcomeSucceeded, true, ev.stored.Result
	case ev.stored.State == storage.Failed:
		e.Outcome, e.Final = OutcomeFailed, true
	default:
		e.Outcome, e.NextAttemptAt = OutcomeRetrying, ev.stored.NextAttemptAt
	}
	return e
}

// logAttempt logs an attempt: one Info line when the task finished with
// it, Debug when it will be retried, Error when its outcome was not stored.
func (q *Queue) logAttempt(e *AttemptEvent) {
	level, msg := slog.LevelInfo, "task finished"
	switch {
	case e.Outcome == OutcomeStoreError:
		level, msg = slog.LevelError, "store outcome"
	case !e.Final:
		level, msg = slog.LevelDebug, "task attempt"
	}
	ctx := context.Background()
	if !q.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String(keyTaskID, e.TaskID.String()),
		slog.String(keyMethod, e.Method),
		slog.String(keyURL, e.URL),
		slog.String(keyOutcome, string(e.Outcome)),
		slog.Int(attemptKey(e), e.Attempt),
		slog.Duration(keyDuration, e.Duration))
	if e.StatusCode != 0 {
		attrs = append(attrs, slog.Int(keyStatusCode, e.StatusCode))
	}
	if e.Error != nil {
		attrs = append(attrs, slog.String(keyError, e.Error.Error()))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.Any(keyError, e.Err))
	}
	if e.Result != nil {
		attrs = append(attrs, slog.String(keyRetval, truncate(string(e.Result), maxLogResult)))
	}
	if e.NextAttemptAt != nil {
		attrs = append(attrs, slog.Duration(keyDelay, e.NextAttemptAt.Sub(e.StartedAt)))
	}
	q.log.LogAttrs(ctx, level, msg, attrs...)
}

// attemptKey names the attempt number: "attempts" on a finished task's
// line, where it is the task's count, else "attempt".
func attemptKey(e *AttemptEvent) string {
	if e.Final {
		return keyAttempts
	}
	return keyAttempt
}

// truncate returns s cut to at most n bytes on a rune boundary, with "…"
// appended when it was cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
