package queue

import (
	"context"
	"io"
)

// Backup writes a consistent copy of the queue's store to w while the queue
// runs, and returns the bytes written. The copy is a store file that Open
// accepts: every task as it was at one instant, with no lease (tasks that
// were active then run again from the copy). Enqueues and outcomes go on
// during the copy, but a commit that must grow the file waits for it to
// end, so write the copy to a fast local disk.
func (q *Queue) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return q.store.Backup(ctxWriter{ctx, w})
}

// ctxWriter fails writes once ctx is done, so a cancelled backup stops at
// its next write.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Check reads the whole store and verifies it: bbolt's check of its pages,
// then hookq's invariants (every record decodes, the schedule index holds
// exactly the unfinished tasks, keys and attempts belong to stored tasks,
// the per-state counters equal a count of the records). It returns every
// problem found, or nil when the store is sound. It runs in one read
// transaction, so dispatch goes on, but a commit that must grow the file
// waits for it.
func (q *Queue) Check(ctx context.Context) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return q.store.Check(), nil
}
