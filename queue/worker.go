package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/hookq/hookq/dispatch"
	"github.com/hookq/hookq/internal/failpoint"
	"github.com/hookq/hookq/storage"
)

// bodyEvidence bounds the reply body kept with a failed attempt.
const bodyEvidence = 1024

// runWorker runs leased tasks until ctx is done.
func (q *Queue) runWorker(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-q.work:
			if ctx.Err() != nil {
				return nil // closing: leave the task for the next Open
			}
			q.run(l)
			q.slots <- struct{}{}
		}
	}
}

// run makes one attempt of a leased task and stores its outcome.
func (q *Queue) run(l *lease) {
	t := l.task
	n := t.Attempts + 1
	start := q.clock.Now().UTC()

	// Build the request; a task whose stored form cannot be sent fails.
	req, err := q.request(t, start)
	if err != nil {
		q.finish(l, n, start, dispatch.Outcome{Verdict: dispatch.Failed,
			Err: &dispatch.Error{Kind: dispatch.KindTransport, Message: "build request: " + err.Error()}})
		return
	}

	// The attempt runs under its own context, so that Cancel can abort
	// it and Close can abort all attempts after the grace period (see
	// abortAttempts). It is not derived from a context shared by all
	// attempts: registering each with one parent costs a map insert and a
	// delete under the parent's lock, for every attempt.
	actx, cancel := context.WithCancel(context.Background())
	if l.begin(cancel, q.attemptCx) {
		// Cancelled before its request was sent: nothing to record.
		cancel()
		q.unlease(t.ID)
		return
	}
	out := q.disp.Do(actx, req)
	cancel()

	if q.attemptCx.Err() != nil {
		// Aborted by Close: store nothing, the task runs after restart.
		q.unlease(t.ID)
		return
	}
	q.finish(l, n, start, out)
}

// request turns a stored task into the description dispatch sends.
func (q *Queue) request(t *Task, at time.Time) (*dispatch.Request, error) {
	args, err := dispatch.EncodeArgs(t.Args)
	if err != nil {
		return nil, err
	}
	var header http.Header
	if len(t.Headers) > 0 {
		header = make(http.Header, len(t.Headers))
		for k, v := range t.Headers {
			header.Set(k, v)
		}
	}
	return &dispatch.Request{
		ID:       t.ID.String(),
		Method:   t.Method,
		URL:      t.URL,
		Args:     args,
		JSON:     t.JSON,
		Header:   header,
		Protocol: dispatch.Protocol(t.Protocol),
		Timeout:  time.Duration(t.Timeout),
		Time:     at,
	}, nil
}

// finish queues the outcome of attempt n of a leased task for the next
// commit and returns without waiting for it, so the worker can take another
// task while the commit is under way. The lease is kept until the outcome
// is on disk; only then are waiters told. The outcome applies only if the
// task is as leased: a user's cancel or retry in the meantime wins, and the
// attempt is then recorded without changing the task's state.
func (q *Queue) finish(l *lease, n int, start time.Time, out dispatch.Outcome) {
	o := &outcome{q: q, l: l, n: n, now: q.clock.Now().UTC()}
	o.att = storage.Attempt{
		N:          n,
		StartedAt:  start,
		Latency:    storage.Duration(out.Latency),
		StatusCode: out.StatusCode,
		Error:      storageError(out.Err),
	}
	q.decide(&o.next, l.task, n, &o.now, out, &o.att)
	if l.isCancelled() {
		o.att.Outcome = "cancelled"
		o.att.Error = &storage.Error{Kind: "cancelled", Message: "cancelled while in flight"}
	}

	failpoint.Hit(failpoint.OutcomeBeforeCommit)
	if err := q.store.UpdateAsync(o.apply, o.stored); err != nil {
		o.stored(err)
	}
}

// outcome is the outcome of one attempt on its way to the store: what
// finish decided, and what the commit found.
type outcome struct {
	q   *Queue
	l   *lease
	n   int       // the attempt's number
	now time.Time // when the attempt ended; next.FinishedAt points here
	att storage.Attempt
	// next is the task as the attempt leaves it, if the task is still as
	// leased.
	next Task

	// Set by apply: whether a user changed the task since it was leased,
	// and the task as stored.
	superseded bool
	after      *Task
}

// apply stores the outcome in tx. It may run more than once (see
// storage.Store.Update).
func (o *outcome) apply(tx *storage.Tx) error {
	// The leased copy is the stored task unless its revision moved: then
	// a user's cancel or retry wins, and only the attempt is added.
	leased := o.l.task
	rev, err := tx.Rev(leased.ID)
	if err != nil {
		return err
	}
	o.superseded = rev != leased.Rev
	prev, stored := leased, &o.next
	if o.superseded {
		cur, err := tx.Get(leased.ID)
		if err != nil {
			return err
		}
		prev, stored = cur, cur.Clone()
		stored.Attempts = max(cur.Attempts, o.n)
	}
	if err := tx.AddAttempt(leased.ID, &o.att); err != nil {
		return err
	}
	if err := tx.Replace(prev, stored); err != nil {
		return err
	}
	tx.AddTally(o.now, tally(&o.att, stored, o.superseded))
	o.after = stored
	return nil
}

// stored follows the commit of the outcome, or its failure (err).
func (o *outcome) stored(err error) {
	if err == nil {
		failpoint.Hit(failpoint.OutcomeAfterCommit)
	}
	o.q.stored(o.l, &o.att, &o.next, o.after, o.superseded, err)
}

// stored drops the lease of a task whose attempt outcome has been committed
// (or failed to be), tells the scheduler and waiters, and queues the
// outcome for the reporter. next is the task as the attempt would leave
// it, after the task as stored (next, or as a user left it when
// superseded; nil if nothing was stored). It runs on the store's committer
// goroutine, so it only does quick work that never blocks.
func (q *Queue) stored(l *lease, att *storage.Attempt, next, after *Task, superseded bool, err error) {
	// One turn of q.mu for all of it: the committer answers a whole
	// commit's outcomes in a row, while the scheduler takes q.mu to scan.
	q.mu.Lock()
	wake := q.dropLease(l.task.ID)
	q.storeHealth(err)
	switch {
	case err != nil:
		// The task stays as it was on disk and runs again, once the
		// store takes writes again (see storeHealth).
		q.rewind(nil)
		wake = true
	case superseded:
		q.rewind(nil) // a user's retry may have made it due again
		wake = true
	case !next.State.Final():
		q.rewind(next.NextAttemptAt)
		wake = true
	}
	if err == nil && (superseded || next.State.Final()) {
		q.wakeWaiter(l.task.ID)
	}
	q.mu.Unlock()
	if wake {
		q.notify()
	}
	if q.reportAttempts {
		if err != nil || after == nil {
			after = next
		}
		q.report.push(&event{task: l.task, att: att, stored: after, superseded: superseded, err: err})
	}
}

// tally counts an attempt, and the task it finished if any, for the
// store's per-second tallies.
func tally(att *storage.Attempt, stored *Task, superseded bool) storage.Tally {
	n := storage.Tally{Attempts: 1}
	if att.Outcome == "failed" || att.Outcome == "retry" {
		n.FailedAttempts = 1
	}
	if !superseded {
		switch stored.State {
		case storage.Succeeded:
			n.Succeeded = 1
		case storage.Failed:
			n.Failed = 1
		}
	}
	return n
}

// decide sets next to the task t as it should be after attempt n ended at
// *now with out, and fills in the attempt's outcome. next points at *now if
// the task finished.
func (q *Queue) decide(next, t *Task, n int, now *time.Time, out dispatch.Outcome,
	att *storage.Attempt) {
	t.CloneTo(next)
	next.Attempts = n
	next.NextAttemptAt = nil

	if out.Verdict == dispatch.Succeeded {
		att.Outcome = "succeeded"
		next.State = storage.Succeeded
		next.Result = out.Result
		next.Error = nil
		next.FinishedAt = now
		return
	}

	// The attempt failed: keep its evidence, then retry or give up.
	att.Body = evidence(out.Body)
	next.Error = storageError(out.Err)
	if next.Error == nil {
		next.Error = &storage.Error{Kind: dispatch.KindTransport, Message: "attempt failed"}
	}
	att.Outcome = "failed"
	if out.Verdict == dispatch.Retry && n-t.AttemptBase < t.MaxAttempts {
		at := now.Add(q.delay(n-t.AttemptBase-1, out.RetryAfter))
		if at.Before(q.firstRun(t).Add(q.opts.MaxAge)) {
			att.Outcome = "retry"
			next.State = storage.Retrying
			next.NextAttemptAt = &at
			return
		}
		next.Error.Message += fmt.Sprintf(" (gave up: the next attempt would pass the maximum age of %s)",
			q.opts.MaxAge)
	}
	next.State = storage.Failed
	next.FinishedAt = now
}

// firstRun is when a task was first due, or last retried by a user: the
// start of its maximum age.
func (q *Queue) firstRun(t *Task) time.Time {
	first := t.CreatedAt
	if t.RunAt != nil && t.RunAt.After(first) {
		first = *t.RunAt
	}
	if t.RetriedAt != nil && t.RetriedAt.After(first) {
		first = *t.RetriedAt
	}
	return first
}

// delay returns the wait before retry k (0 for the first retry):
// min(cap, base·2^k) with jitter, moved later by a Retry-After the endpoint
// asked for, never past the cap.
func (q *Queue) delay(k int, retryAfter time.Duration) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     q.opts.BackoffBase,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         q.opts.BackoffCap,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 0; i < k && i < 64; i++ {
		d = b.NextBackOff()
	}
	d = max(d, retryAfter)
	return min(d, q.opts.BackoffCap)
}

func storageError(e *dispatch.Error) *storage.Error {
	if e == nil {
		return nil
	}
	return &storage.Error{Kind: e.Kind, Message: e.Message, StatusCode: e.StatusCode}
}

func evidence(body []byte) string {
	if len(body) > bodyEvidence {
		body = body[:bodyEvidence]
	}
	return string(body)
}

// Bounds of the pause of dispatch after outcomes fail to be stored.
const (
	storePauseMin = 100 * time.Millisecond
	storePauseMax = 10 * time.Second
)

// storeHealth pauses dispatch when outcomes cannot be stored, and resumes
// it when one is. An attempt whose outcome is not on disk runs again; with
// a store that refuses writes (a full disk) every attempt would be sent
// again at once, flooding endpoints with duplicates. So after a failed
// outcome commit the scheduler leases nothing for a while, doubling with
// each round of failures from 100 ms up to 10 s, and the first stored
// outcome ends the series. err is the outcome commit's error; a task
// deleted meanwhile or a closing store says nothing about the store's
// health. Callers hold q.mu.
func (q *Queue) storeHealth(err error) {
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrClosed) {
		return
	}
	if err == nil {
		q.storeFailures = 0
		return
	}
	now := q.clock.Now()
	if now.Before(q.pausedUntil) {
		return // an outcome of an attempt leased before the pause began
	}
	q.storeFailures++
	pause := storePauseMin << min(q.storeFailures-1, 20)
	pause = min(pause, storePauseMax)
	// No log here: this runs on the committer. The reporter logs each
	// outcome that failed to be stored, with its error.
	q.pausedUntil = now.Add(pause)
}
