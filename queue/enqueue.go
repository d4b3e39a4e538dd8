package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/hookq/hookq/internal/failpoint"
	"github.com/hookq/hookq/storage"
)

// Enqueue validates spec, stores the task and returns it once it is on
// disk. Concurrent calls share commits. If spec has an idempotency key that
// a kept task holds, Enqueue stores nothing and returns that task. An
// invalid spec fails with an error wrapping ErrInvalid.
func (q *Queue) Enqueue(ctx context.Context, spec Spec) (*Task, error) {
	tasks, err := q.EnqueueMany(ctx, []Spec{spec})
	if err != nil {
		return nil, err
	}
	return tasks[0], nil
}

// EnqueueMany stores all the tasks in one commit, or none of them: if one
// spec is invalid nothing is stored and the error names its index. The
// returned tasks are in the order of specs; a spec whose key a kept task
// holds yields that task, with Existing set.
func (q *Queue) EnqueueMany(ctx context.Context, specs []Spec) ([]*Task, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	if len(specs) == 0 {
		return nil, nil
	}
	tasks, err := q.newTasks(specs)
	if err != nil {
		return nil, err
	}

	// One commit for the lot: an error rolls all of them back.
	var out []*Task
	err = q.commit(ctx, func(tx *storage.Tx) error {
		var err error
		out, err = insertAll(tx, tasks)
		return err
	}, func() *event { return q.enqueueEvent(out) })
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	failpoint.Hit(failpoint.EnqueueAfterCommit)
	q.reschedule(earliest(tasks))
	return out, nil
}

// newTasks validates specs and returns the tasks they describe, with IDs
// and times, ready to insert.
func (q *Queue) newTasks(specs []Spec) ([]*Task, error) {
	now := q.clock.Now().UTC()
	tasks := make([]*Task, len(specs))
	due := &now // the run time of the tasks due now, shared
	urls := urlCheck{known: &q.knownURLs}
	for i := range specs {
		t := new(Task)
		err := fillTask(t, &specs[i], &q.opts, &urls)
		if err != nil {
			if len(specs) > 1 {
				return nil, fmt.Errorf("task %d: %w", i, err)
			}
			return nil, err
		}
		if t.ID, err = q.ids.next(now); err != nil {
			return nil, fmt.Errorf("enqueue: new id: %w", err)
		}
		t.CreatedAt = now
		t.State = storage.Pending
		t.NextAttemptAt = due
		if t.RunAt != nil && t.RunAt.After(now) {
			t.State = storage.Scheduled
			t.NextAttemptAt = t.RunAt
		}
		tasks[i] = t
	}
	return tasks, nil
}

// insertAll inserts tasks in tx and returns what the caller gets back: each
// task, or the kept task that holds its idempotency key, with Existing set.
// It may run more than once (see storage.Store.Update).
func insertAll(tx *storage.Tx, tasks []*Task) ([]*Task, error) {
	out := make([]*Task, len(tasks))
	for i, t := range tasks {
		prev, dup, err := tx.Insert(t)
		if err != nil {
			return nil, err
		}
		out[i] = t
		if dup {
			prev.Existing = true
			out[i] = prev
		}
	}
	return out, nil
}

// enqueueEvent returns the event of an enqueue that returned out, or nil
// when no one observes enqueues.
func (q *Queue) enqueueEvent(out []*Task) *event {
	if q.opts.OnEnqueue == nil {
		return nil
	}
	existing := 0
	for _, t := range out {
		if t.Existing {
			existing++
		}
	}
	return &event{enqueue: &EnqueueEvent{Tasks: len(out) - existing, Existing: existing}}
}

// commit runs fn in a store update and waits for it, like Store.Update;
// once it is committed, the event report makes, if any, is queued for the
// reporter from the committer itself, so that it is delivered before Close
// returns.
func (q *Queue) commit(ctx context.Context, fn func(*storage.Tx) error, report func() *event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	err := q.store.UpdateAsync(fn, func(err error) {
		if err == nil {
			if ev := report(); ev != nil {
				q.report.push(ev)
			}
		}
		ch <- err
	})
	if err != nil {
		return err
	}
	return <-ch
}

// earliest returns the earliest next attempt time of tasks.
func earliest(tasks []*Task) *time.Time {
	var first *time.Time
	for _, t := range tasks {
		if first == nil || t.NextAttemptAt.Before(*first) {
			first = t.NextAttemptAt
		}
	}
	return first
}

// notify tells the scheduler that a task may have become due.
func (q *Queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
