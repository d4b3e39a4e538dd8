package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookq/hookq/storage"
)

// Get returns the task with the given ID, or an error wrapping ErrNotFound.
func (q *Queue) Get(ctx context.Context, id ID) (*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var t *Task
	err := q.store.View(func(tx *storage.Tx) error {
		var err error
		t, err = tx.Get(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	q.present(t, q.clock.Now())
	return t, nil
}

// present sets the state a reader should see: Active while a worker holds
// the task, Pending for a scheduled task whose time has come.
func (q *Queue) present(t *Task, now time.Time) {
	if t.State.Final() {
		return
	}
	q.mu.Lock()
	_, leased := q.leases[t.ID]
	q.mu.Unlock()
	presentWith(t, now, leased)
}

func presentWith(t *Task, now time.Time, leased bool) {
	t.State = shownState(t, now, leased)
}

// shownState returns the state a reader should see of the stored task t.
func shownState(t *Task, now time.Time, leased bool) State {
	switch {
	case t.State.Final():
	case leased:
		return storage.Active
	case t.State == storage.Scheduled && t.NextAttemptAt != nil && !t.NextAttemptAt.After(now):
		return storage.Pending
	}
	return t.State
}

// storedStates returns the stored states of the tasks a reader sees in
// state st.
func storedStates(st State) []State {
	switch st {
	case storage.Active:
		return []State{storage.Scheduled, storage.Pending, storage.Retrying}
	case storage.Pending:
		return []State{storage.Pending, storage.Scheduled}
	default:
		return []State{st}
	}
}

// urlMatch reports whether the URL of t, as output shows it (userinfo
// replaced), contains sub.
func urlMatch(t *Task, sub string) bool {
	return sub == "" || strings.Contains(storage.RedactURL(t.URL), sub)
}

// leased returns a copy of the lease set, with the stored state of each
// leased task. Functions that run inside a store transaction use it: they
// must not take q.mu, which the scheduler holds while it opens one.
func (q *Queue) leased() map[ID]State {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := make(map[ID]State, len(q.leases))
	for id, l := range q.leases {
		if !l.isCancelled() {
			m[id] = l.task.State
		}
	}
	return m
}

// Attempts returns the attempts of the task with the given ID, oldest
// first, or an error wrapping ErrNotFound.
func (q *Queue) Attempts(ctx context.Context, id ID) ([]Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Attempt
	err := q.store.View(func(tx *storage.Tx) error {
		if _, err := tx.Get(id); err != nil {
			return err
		}
		var err error
		out, err = tx.Attempts(id)
		return err
	})
	return out, err
}

// MaxListLimit bounds one page of List.
const MaxListLimit = 1000

// ListOptions select the tasks List returns.
type ListOptions struct {
	// State keeps only tasks in this state; zero means all states.
	State State
	// Limit bounds the number of tasks. Zero means 100; at most 1,000,
	// since a page is held in memory whole (a task may carry a 1 MiB body
	// and result).
	Limit int
	// Before lists the tasks older than this ID, for paging: pass the ID
	// of the last task of the previous page. Nil starts at the newest.
	Before *ID
	// URL keeps only tasks whose URL contains this text, compared with
	// the URL as output shows it: with its userinfo, if any, replaced by
	// "xxxxx" (so a filter cannot probe a stored password). Empty means
	// every URL. The filter reads each task's record; with a filter that
	// matches little, a page may read much of the store.
	URL string
}

// List returns tasks newest first.
func (q *Queue) List(ctx context.Context, opts ListOptions) ([]*Task, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxListLimit)
	if opts.State == storage.Active {
		return q.listActive(opts.Before, opts.URL, limit)
	}

	// A task is shown in the state present gives it, which for tasks not
	// final can differ from the stored one.
	now := q.clock.Now()
	leased := q.leased()
	sopts := storage.ListOptions{Before: opts.Before, Limit: limit}
	if opts.URL != "" {
		sopts.Match = func(t *Task) bool { return urlMatch(t, opts.URL) }
	}
	if opts.State != 0 {
		if !opts.State.Valid() {
			return nil, fmt.Errorf("list: invalid state %d", opts.State)
		}
		sopts.States = storedStates(opts.State)
		sopts.Match = func(t *Task) bool {
			_, l := leased[t.ID]
			return shownState(t, now, l) == opts.State && urlMatch(t, opts.URL)
		}
	}
	var out []*Task
	err := q.store.View(func(tx *storage.Tx) error {
		var err error
		out, err = tx.List(sopts)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		_, l := leased[t.ID]
		presentWith(t, now, l)
	}
	return out, nil
}

// listActive returns the leased tasks whose URL contains sub, newest
// first.
func (q *Queue) listActive(before *ID, sub string, limit int) ([]*Task, error) {
	leased := q.leased()
	ids := make([]ID, 0, len(leased))
	for id := range leased {
		if before == nil || id.Compare(*before) < 0 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b ID) int { return b.Compare(a) })

	var out []*Task
	err := q.store.View(func(tx *storage.Tx) error {
		for _, id := range ids {
			if len(out) == limit {
				break
			}
			t, err := tx.Get(id)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			presentWith(t, q.clock.Now(), true)
			if t.State == storage.Active && urlMatch(t, sub) {
				out = append(out, t)
			}
		}
		return nil
	})
	return out, err
}

// Stats is a summary of the queue. Its JSON field names are part of
// hookq's API.
type Stats struct {
	// Counts holds the number of tasks in each state, by state name.
	Counts map[string]int64 `json:"counts"`
	// Total is the number of tasks kept.
	Total int64 `json:"total"`
	// OldestPending is the first run time of the task that has waited
	// longest to run now, or nil if none is waiting.
	OldestPending *time.Time `json:"oldest_pending"`
	// OldestPendingAge is how long, in seconds, the task that has waited
	// longest to run has been due (since its run time, or the time set for
	// its retry): the dispatch backlog. 0 when none is waiting.
	OldestPendingAge float64 `json:"oldest_pending_age_seconds"`
	// NextRun is the earliest run time of a task not yet due, or nil.
	NextRun *time.Time `json:"next_run"`
	// LastMinute counts the attempts and finished tasks of the last
	// minute.
	LastMinute Window `json:"last_minute"`
}

// StatsWindow is the period of Stats.LastMinute.
const StatsWindow = time.Minute

// Window counts what the workers did over a recent period: the seconds
// up to now, the current one included. The counts are exact, kept in the
// same transactions as the outcomes they count.
type Window struct {
	// Seconds is the length of the period.
	Seconds int `json:"seconds"`
	// Succeeded is the number of tasks that succeeded.
	Succeeded int64 `json:"succeeded"`
	// Failed is the number of tasks that failed for good.
	Failed int64 `json:"failed"`
	// FinishedPerSecond is the throughput: (Succeeded + Failed) / Seconds.
	FinishedPerSecond float64 `json:"finished_per_second"`
	// Attempts is the number of attempts whose outcome was stored.
	Attempts int64 `json:"attempts"`
	// FailedAttempts is the number of those that did not succeed: the
	// task failed with it or will be retried.
	FailedAttempts int64 `json:"failed_attempts"`
	// AttemptsPerSecond is Attempts / Seconds.
	AttemptsPerSecond float64 `json:"attempts_per_second"`
	// ErrorRate is FailedAttempts / Attempts, from 0 to 1; 0 when there
	// was no attempt.
	ErrorRate float64 `json:"error_rate"`
}

// newWindow returns the window of d ending now with the tally n.
func newWindow(d time.Duration, n storage.Tally) Window {
	w := Window{
		Seconds:        int(d / time.Second),
		Succeeded:      n.Succeeded,
		Failed:         n.Failed,
		Attempts:       n.Attempts,
		FailedAttempts: n.FailedAttempts,
	}
	w.FinishedPerSecond = float64(w.Succeeded+w.Failed) / float64(w.Seconds)
	w.AttemptsPerSecond = float64(w.Attempts) / float64(w.Seconds)
	if w.Attempts > 0 {
		w.ErrorRate = float64(w.FailedAttempts) / float64(w.Attempts)
	}
	return w
}

// Stats returns the counts per state, read from counters kept in the same
// transactions as the tasks (no scan), with leased tasks counted as active;
// the oldest pending task; and the attempts and finished tasks of the last
// minute, from the store's per-second tallies. It reads the store alone,
// so a queue opened without workers reports the same as a running one.
func (q *Queue) Stats(ctx context.Context) (*Stats, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := q.clock.Now()
	leased := q.leased()
	var counts map[State]int64
	var oldest, next *time.Time
	var age time.Duration
	var recent storage.Tally
	err := q.store.View(func(tx *storage.Tx) error {
		counts = tx.Counts()

		// Leased tasks are active, not in the state they are stored in.
		for _, st := range leased {
			counts[st]--
			counts[storage.Active]++
		}
		due, n, err := tx.Due(now, storage.DueOptions{Max: 1,
			Skip: func(id ID) bool { _, ok := leased[id]; return ok }})
		if err != nil {
			return err
		}
		if len(due) > 0 {
			oldest = ptr(q.firstRun(due[0]))
			age = max(now.Sub(*due[0].NextAttemptAt), 0)
		}
		next = n
		if next == nil && len(due) > 0 {
			// Due stopped at a due task: the next run is the first entry
			// after now.
			from := storage.ScheduleKey(now.Add(time.Nanosecond), ID{})
			if _, next, err = tx.Due(now, storage.DueOptions{Max: 1, From: from}); err != nil {
				return err
			}
		}

		// The window's seconds: the current one and those before it.
		recent, err = tx.Tallies(now.Add(-StatsWindow+time.Second), now)
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &Stats{Counts: make(map[string]int64), OldestPending: oldest, NextRun: next,
		LastMinute: newWindow(StatsWindow, recent)}
	s.OldestPendingAge = age.Seconds()
	for _, st := range storage.States {
		s.Counts[st.String()] = counts[st]
		s.Total += counts[st]
	}
	return s, nil
}

// Wait blocks until the task with the given ID is final and returns it. It
// is woken by the completion itself, not by polling. It fails when ctx is
// done, when the queue closes, or at once when the queue has no workers and
// the task is not final.
func (q *Queue) Wait(ctx context.Context, id ID) (*Task, error) {
	for {
		ch, release := q.subscribe(id)
		t, err := q.Get(ctx, id)
		switch {
		case err != nil:
			release()
			return nil, err
		case t.State.Final():
			release()
			return t, nil
		case q.isClosed():
			release()
			return nil, ErrClosed
		case q.opts.DisableWorkers:
			release()
			return t, fmt.Errorf("wait for %s: %w: this queue dispatches nothing (task is %s)",
				id, ErrNoWorkers, t.State)
		}
		select {
		case <-ch:
			release()
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
	}
}

// ErrNoWorkers reports a Wait on a queue opened without workers, where the
// task could never finish.
var ErrNoWorkers = errors.New("queue has no workers")

// waiter is the set of Wait calls on one task.
type waiter struct {
	ch chan struct{} // closed when the task may have finished
	n  int           // Wait calls holding ch
}

// subscribe returns a channel closed at the task's next completion, and a
// function to call when done with it.
func (q *Queue) subscribe(id ID) (<-chan struct{}, func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.waiters[id]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		q.waiters[id] = w
	}
	w.n++
	return w.ch, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		w.n--
		if w.n == 0 && q.waiters[id] == w {
			delete(q.waiters, id)
		}
	}
}

// finished wakes the waiters of a task whose final outcome is on disk.
func (q *Queue) finished(id ID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.wakeWaiter(id)
}

// wakeWaiter is finished under q.mu.
func (q *Queue) wakeWaiter(id ID) {
	if w := q.waiters[id]; w != nil {
		close(w.ch)
		delete(q.waiters, id)
	}
}

// wakeWaiters wakes every waiter, so that they notice the queue closing.
func (q *Queue) wakeWaiters() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, w := range q.waiters {
		close(w.ch)
		delete(q.waiters, id)
	}
}
