package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookq/hookq/internal/failpoint"
	"github.com/hookq/hookq/storage"
)

// sweepEvery returns how often the retention sweep runs: a tenth of the
// retention period, between one second and one minute.
func (q *Queue) sweepEvery() time.Duration {
	return min(max(q.opts.Retention/10, time.Second), time.Minute)
}

// retain deletes finished tasks older than the retention period until ctx
// is done, sleeping between sweeps.
func (q *Queue) retain(ctx context.Context) error {
	for {
		n, err := q.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.Warn("retention sweep", slog.Any(keyError, err))
		}
		if q.hooks.afterSweep != nil {
			q.hooks.afterSweep(n)
		}
		timer := q.clock.NewTimer(q.sweepEvery())
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C():
		}
	}
}

// Sweep deletes the final tasks that finished more than the retention
// period ago, with their attempts, and returns how many it deleted. It
// works in bounded transactions so that dispatch carries on meanwhile. A
// queue with workers runs it in the background; a negative Retention
// disables it.
func (q *Queue) Sweep(ctx context.Context) (int, error) {
	if q.opts.Retention < 0 {
		return 0, nil
	}
	deleted, err := q.deleteFinished(ctx, q.clock.Now().Add(-q.opts.Retention))
	if err == nil && deleted > 0 {
		q.log.Info("retention sweep", slog.Int(keyDeleted, deleted))
	}
	return deleted, err
}

// Purge deletes the final tasks that finished more than olderThan ago,
// with their attempts, whatever the retention period, and returns how
// many it deleted. A state, if given, limits it to the tasks in that
// state, which must be final (ErrNotFinal otherwise); zero means every
// final state. Like Sweep it works in bounded transactions; if ctx ends
// or an error occurs part way, what was deleted stays deleted.
func (q *Queue) Purge(ctx context.Context, olderThan time.Duration, st State) (int, error) {
	if q.isClosed() {
		return 0, ErrClosed
	}
	var states []State
	if st != 0 {
		if !st.Final() {
			return 0, fmt.Errorf("purge %s tasks: %w", st, ErrNotFinal)
		}
		states = []State{st}
	}
	return q.deleteFinished(ctx, q.clock.Now().Add(-olderThan), states...)
}

// deleteFinished deletes the final tasks in states (none: all final
// states) that finished before cutoff, in transactions bounded by
// bulkBatch and bulkScan.
func (q *Queue) deleteFinished(ctx context.Context, cutoff time.Time,
	states ...State) (int, error) {
	var from *ID
	deleted := 0
	for {
		// The update may run more than once: it sets next, not from.
		var n int
		var next *ID
		var done bool
		err := q.store.Update(ctx, func(tx *storage.Tx) error {
			var err error
			n, next, done, err = tx.DeleteFinished(cutoff, from, bulkBatch, bulkScan, states...)
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("delete finished tasks: %w", err)
		}
		deleted += n
		if done {
			return deleted, nil
		}
		failpoint.Hit(failpoint.SweepBetweenBatches)
		from = next
	}
}
