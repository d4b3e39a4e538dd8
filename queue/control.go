package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hookq/hookq/storage"
)

// Cancel makes a task that has not finished cancelled: it will not be
// dispatched, and an attempt in flight has its request aborted and its
// outcome discarded. The task's idempotency key is released.
//
// A cancel that races with an attempt's reply has one winner: whichever is
// committed first. If the reply's outcome is on disk first, Cancel fails
// with ErrFinal and the task keeps its result; otherwise the task is
// cancelled and the reply is kept only as the attempt's record.
func (q *Queue) Cancel(ctx context.Context, id ID) (*Task, error) {
	out, err := q.change(ctx, "cancel", id, func(_ *storage.Tx, cur *Task,
		now time.Time) (*Task, error) {
		if cur.State.Final() {
			return nil, fmt.Errorf("cancel %s: %w (%s)", id, ErrFinal, cur.State)
		}
		return cancelEdit(cur, now), nil
	})
	if err != nil {
		return nil, err
	}

	q.aborted(id)
	return out, nil
}

// cancelEdit is the change of a cancel: the task becomes cancelled now.
func cancelEdit(cur *Task, now time.Time) *Task {
	next := cur.Clone()
	next.State = storage.Cancelled
	next.NextAttemptAt = nil
	next.FinishedAt = &now
	return next
}

// aborted follows the commit of a task's cancel: it aborts the attempt in
// flight, if any, whose worker sees the new revision and leaves the task
// cancelled, and wakes the task's waiters.
func (q *Queue) aborted(id ID) {
	q.mu.Lock()
	if l := q.leases[id]; l != nil {
		l.userCancelled()
	}
	q.mu.Unlock()
	q.finished(id)
}

// Retry makes a final task pending again, keeping its history: its attempt
// count goes on from where it was, with a fresh allowance of MaxAttempts.
// It fails with ErrNotFinal for a task that has not finished, and with
// ErrKeyHeld for a cancelled task whose idempotency key another task has
// taken since.
func (q *Queue) Retry(ctx context.Context, id ID) (*Task, error) {
	out, err := q.change(ctx, "retry", id, func(tx *storage.Tx, cur *Task,
		now time.Time) (*Task, error) {
		if !cur.State.Final() {
			return nil, fmt.Errorf("retry %s: %w (%s)", id, ErrNotFinal, cur.State)
		}
		if cur.Key != nil {
			if holder, ok := tx.KeyHolder(*cur.Key); ok && holder != id {
				return nil, &keyHeldError{id: id, key: *cur.Key, holder: holder}
			}
		}
		return retryEdit(cur, now), nil
	})
	if err != nil {
		return nil, err
	}
	q.reschedule(out.NextAttemptAt)
	return out, nil
}

// retryEdit is the change of a retry: the task is pending now, with a
// fresh allowance of attempts.
func retryEdit(cur *Task, now time.Time) *Task {
	next := cur.Clone()
	next.State = storage.Pending
	next.NextAttemptAt = &now
	next.FinishedAt = nil
	next.Result = nil
	next.Error = nil
	next.AttemptBase = cur.Attempts
	next.RetriedAt = &now
	return next
}

// keyHeldError is the ErrKeyHeld of a Retry: the idempotency key of the
// cancelled task id is held by holder, which took it after the cancel.
type keyHeldError struct {
	id, holder ID
	key        string
}

func (e *keyHeldError) Error() string {
	return fmt.Sprintf("retry %s: its idempotency key %q has been taken by task %s "+
		"since it was cancelled", e.id, e.key, e.holder)
}

func (e *keyHeldError) Unwrap() error { return ErrKeyHeld }

// change applies a user's change (op, such as "cancel") to one task in one
// commit: edit returns the task as it should be, or an error to leave it
// as it is.
func (q *Queue) change(ctx context.Context, op string, id ID,
	edit func(tx *storage.Tx, cur *Task, now time.Time) (*Task, error)) (*Task, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	var out *Task
	err := q.store.Update(ctx, func(tx *storage.Tx) error {
		cur, err := tx.Get(id)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%s %s: %w", op, id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		next, err := edit(tx, cur, q.clock.Now().UTC())
		if err != nil {
			return err
		}
		out = next
		return tx.Replace(cur, next)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
