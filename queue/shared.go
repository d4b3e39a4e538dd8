package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hookq/hookq/storage"
)

// OpenDB opens a queue inside db, a bbolt database that the application
// opened and goes on using for its own data, and starts dispatching unless
// opts says not to. hookq keeps its buckets under one top-level bucket of
// db, Options.Bucket ("hookq" by default), created if missing, so they
// never collide with the application's. With EnqueueTx the application can
// then enqueue a task in the same transaction as its own writes.
//
// The application owns db: Close leaves it open, and the queue must be
// closed before db is. While a queue is open on a bucket of db, OpenDB
// refuses a second one on it (unless ReadOnly), which would dispatch every
// task again. A read-only db opens a read-only queue. The options
// NoSync and LockTimeout do not apply: db has the ones it was opened with,
// and its NoSync, if set, makes hookq's commits unsynced too.
//
// hookq's committer shares db's single writer with the application, which
// bbolt serialises: while the application holds a read-write transaction,
// hookq's commits (enqueues, the outcomes of attempts, Cancel, Retry, the
// retention sweep) wait for it. Keep those transactions short.
func OpenDB(db *bolt.DB, opts *Options) (*Queue, error) {
	return openDB(db, opts, hooks{})
}

// openDB is OpenDB with hooks for tests, set before any worker starts.
func openDB(db *bolt.DB, opts *Options, h hooks) (*Queue, error) {
	if db == nil {
		return nil, fmt.Errorf("open queue: nil database")
	}
	o := opts.withDefaults()
	if db.IsReadOnly() {
		o.ReadOnly, o.DisableWorkers = true, true
	}
	store, err := storage.OpenDB(db, &storage.Options{ReadOnly: o.ReadOnly, Bucket: o.Bucket})
	if err != nil {
		return nil, err
	}
	return newQueue(store, o, h, db.Path())
}

// EnqueueTx stores a task in tx, a read-write transaction of the database
// the queue was opened on by OpenDB, beside the application's own writes in
// it. The task exists if and only if tx commits, and is dispatched only
// once tx has committed; a rolled-back tx leaves no task, no idempotency
// key and no change to the counters, and wakes nothing. Otherwise
// EnqueueTx is Enqueue: an invalid spec fails with an error wrapping
// ErrInvalid, and a spec whose idempotency key a kept task holds (one
// enqueued earlier in tx included) yields that task, with Existing set.
//
// The task is on disk when tx's commit returns, as durably as db's options
// make it. A read-only tx, a tx of another database, or a queue opened by
// Open gets an error at once.
//
// If EnqueueTx fails, return its error from the transaction (or roll tx
// back): it writes nothing when the spec is invalid, the queue is closed or
// tx is refused, but a failure of bbolt itself may leave part of the task
// in tx.
//
// IMPORTANT: hookq's own commits wait while tx is open, so keep it short.
// Inside tx, call no Queue method but EnqueueTx and EnqueueManyTx: the
// others do not see tx's writes, and those that write (Enqueue, Cancel,
// Retry) wait for hookq's committer, which waits for tx to end: a
// deadlock.
func (q *Queue) EnqueueTx(tx *bolt.Tx, spec Spec) (*Task, error) {
	tasks, err := q.EnqueueManyTx(tx, []Spec{spec})
	if err != nil {
		return nil, err
	}
	return tasks[0], nil
}

// EnqueueManyTx is EnqueueTx for several tasks, as EnqueueMany is for
// Enqueue: if one spec is invalid nothing is written and the error names
// its index. The returned tasks are in the order of specs.
func (q *Queue) EnqueueManyTx(tx *bolt.Tx, specs []Spec) ([]*Task, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	if tx == nil {
		return nil, fmt.Errorf("enqueue: nil transaction")
	}
	if len(specs) == 0 {
		return nil, nil
	}
	tasks, err := q.newTasks(specs)
	if err != nil {
		return nil, err
	}

	// Write into the application's transaction; insertAll runs once here.
	var out []*Task
	err = q.store.UpdateTx(tx, func(stx *storage.Tx) error {
		var err error
		out, err = insertAll(stx, tasks)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}

	// Wake the scheduler once the tasks are there to be read: after the
	// commit, outside of any transaction (it takes q.mu). bbolt calls
	// nothing on a rollback.
	var added []*Task
	for i, t := range out {
		if t == tasks[i] {
			added = append(added, t)
		}
	}
	ev := q.enqueueEvent(out)
	if len(added) > 0 || ev != nil {
		at := earliest(added)
		tx.OnCommit(func() {
			if at != nil {
				q.reschedule(at)
			}
			if ev != nil {
				q.report.push(ev)
			}
		})
	}
	return out, nil
}
