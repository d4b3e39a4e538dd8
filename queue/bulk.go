package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/hookq/hookq/storage"
)

// Bounds of one transaction of a bulk change (RetryAll, CancelAll, Purge)
// and of the retention sweep, so that dispatch carries on in between: at
// most bulkBatch tasks changed and bulkScan records read per commit.
const (
	bulkBatch = 1000
	bulkScan  = 20000
)

// RetryAll retries every task in the final state st, as Retry does each
// one, and returns how many it retried. It works in bounded transactions,
// oldest task first, so dispatch carries on meanwhile; tasks that finish
// while it runs are retried too if it has not yet passed them. A cancelled
// task whose idempotency key another task has taken since is left
// cancelled (Retry would fail with ErrKeyHeld). A state that is not final
// fails with ErrNotFinal. If ctx ends or an error occurs part way, the
// tasks already retried stay retried and the count says how many.
func (q *Queue) RetryAll(ctx context.Context, st State) (int, error) {
	if !st.Final() {
		return 0, fmt.Errorf("retry all %s tasks: %w", st, ErrNotFinal)
	}
	return q.bulk(ctx, st, func(tx *storage.Tx, cur *Task, now time.Time) *Task {
		if cur.State == storage.Cancelled && cur.Key != nil {
			if holder, ok := tx.KeyHolder(*cur.Key); ok && holder != cur.ID {
				return nil
			}
		}
		return retryEdit(cur, now)
	}, func(changed []*Task, now time.Time) {
		if len(changed) > 0 {
			q.reschedule(&now)
		}
	})
}

// CancelAll cancels every task shown in the state st, which must not be
// final (ErrFinal otherwise), as Cancel does each one, and returns how many
// it cancelled. Active means the tasks with an attempt in flight, which is
// aborted. Like RetryAll it works in bounded transactions, and leaves the
// tasks enqueued after it started alone.
func (q *Queue) CancelAll(ctx context.Context, st State) (int, error) {
	if !st.Valid() || st.Final() {
		return 0, fmt.Errorf("cancel all %s tasks: %w", st, ErrFinal)
	}
	return q.bulk(ctx, st, func(_ *storage.Tx, cur *Task, now time.Time) *Task {
		return cancelEdit(cur, now)
	}, func(changed []*Task, _ time.Time) {
		for _, t := range changed {
			q.aborted(t.ID)
		}
	})
}

// bulk applies edit to every task shown in state st that existed when it
// started, oldest first, in transactions bounded by bulkBatch and
// bulkScan, and returns the number changed. edit returns the task as it
// should be, or nil to leave it; it may run more than once per task (see
// storage.Store.Update). after runs once each transaction is on disk, with
// the tasks it changed.
func (q *Queue) bulk(ctx context.Context, st State,
	edit func(tx *storage.Tx, cur *Task, now time.Time) *Task,
	after func(changed []*Task, now time.Time)) (int, error) {
	if q.isClosed() {
		return 0, ErrClosed
	}
	var until *ID
	if err := q.store.View(func(tx *storage.Tx) error { until = tx.Last(); return nil }); err != nil {
		return 0, err
	}
	if until == nil {
		return 0, nil
	}

	total := 0
	var from *ID
	for {
		// Leases are read outside the transaction (see leased). A task
		// leased after this read is changed as stored, and after() then
		// finds its lease.
		leased := q.leased()
		now := q.clock.Now().UTC()
		var changed []*Task
		var next *ID
		err := q.store.Update(ctx, func(tx *storage.Tx) error {
			changed = changed[:0]
			found, n, err := tx.Select(storage.SelectOptions{
				After: from, Until: until, States: storedStates(st),
				Match: func(t *Task) bool {
					_, l := leased[t.ID]
					return shownState(t, now, l) == st
				},
				Max: bulkBatch, MaxScan: bulkScan,
			})
			if err != nil {
				return err
			}
			for _, cur := range found {
				nt := edit(tx, cur, now)
				if nt == nil {
					continue
				}
				if err := tx.Replace(cur, nt); err != nil {
					return err
				}
				changed = append(changed, nt)
			}
			next = n
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("change %s tasks: %w", st, err)
		}
		total += len(changed)
		after(changed, now)
		if next == nil {
			return total, nil
		}
		from = next
	}
}
