package queue

import (
	"context"
	"log/slog"
	"time"

	"github.com/hookq/hookq/storage"
)

// Bounds of one retention transaction, so a sweep never holds the
// committer for long: at most sweepBatch deletions and sweepScan records
// read per commit.
const (
	sweepBatch = 1000
	sweepScan  = 20000
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
	cutoff := q.clock.Now().Add(-q.opts.Retention)
	var from *ID
	deleted := 0
	for {
		var n int
		var done bool
		err := q.store.Update(ctx, func(tx *storage.Tx) error {
			var err error
			n, from, done, err = tx.DeleteFinished(cutoff, from, sweepBatch, sweepScan)
			return err
		})
		deleted += n
		if err != nil {
			return deleted, err
		}
		if done {
			if deleted > 0 {
				q.log.Info("retention sweep", slog.Int(keyDeleted, deleted))
			}
			return deleted, nil
		}
	}
}
