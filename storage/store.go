// Package storage keeps hookq's tasks in one bbolt file: the task records
// under their ULIDs, a schedule index ordered by run time, the attempts of
// each task, idempotency keys and per-state counters.
//
// Every write goes through a single committer goroutine that takes all the
// updates queued at that moment, applies them in one read-write transaction
// and syncs it once (group commit), so concurrent writers share an fsync.
// Reads use short read-only transactions and never block on the committer.
//
// The package knows nothing of HTTP or of scheduling: it stores tasks and
// keeps its indexes and counters consistent with them in every transaction.
package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors returned by the store. Compare with errors.Is.
var (
	// ErrNotFound reports that no task has the given ID.
	ErrNotFound = errors.New("task not found")
	// ErrClosed reports a use of a store after Close.
	ErrClosed = errors.New("store closed")
	// ErrLocked reports that another process holds the store's file.
	ErrLocked = errors.New("store is in use by another hookq process")
	// ErrReadOnly reports a write to a store opened read-only.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrKeyHeld reports that a task cannot take back its idempotency key
	// because another task holds it now.
	ErrKeyHeld = errors.New("idempotency key is held by another task")
)

// schemaVersion is written to the meta bucket of a new file. A file with a
// newer version is refused rather than misread.
const schemaVersion = 1

var (
	bucketTasks    = []byte("tasks")
	bucketSchedule = []byte("schedule")
	bucketAttempts = []byte("attempts")
	bucketKeys     = []byte("keys")
	bucketCounts   = []byte("counts")
	bucketMeta     = []byte("meta")
	bucketTallies  = []byte("tallies")
	keyVersion     = []byte("version")
)

// maxBatch bounds how many updates share one commit, so one commit's latency
// stays bounded under a flood of writers.
const maxBatch = 4096

// Options configure Open. The zero value (or nil) means defaults.
type Options struct {
	// ReadOnly opens the file with a shared lock for reading only; writes
	// fail with ErrReadOnly. Several read-only opens may share a file, but
	// not with a writer.
	ReadOnly bool
	// LockTimeout is how long Open waits for another process to release
	// the file before it fails with ErrLocked. Defaults to 2s.
	LockTimeout time.Duration
	// NoSync skips the fsync of each commit. Only for tests and benchmarks:
	// a crash may then lose acknowledged writes. Defaults to false.
	NoSync bool
}

// Store is an open hookq store. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	readOnly bool

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool
	ops    chan *op
	done   chan struct{} // closed when the committer has exited
}

// op is one update waiting for the committer.
type op struct {
	fn   func(*Tx) error
	done func(error) // called by the committer once the outcome is known
}

// Open opens or creates the store file at path.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	lockTimeout := opts.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = 2 * time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        lockTimeout,
		ReadOnly:       opts.ReadOnly,
		NoSync:         opts.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := checkSchema(db, opts.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	s := &Store{db: db, readOnly: opts.ReadOnly, done: make(chan struct{})}
	if opts.ReadOnly {
		close(s.done)
		return s, nil
	}
	s.ops = make(chan *op, maxBatch)
	go s.commitLoop()
	return s, nil
}

// checkSchema creates the buckets of a new file and refuses a file written
// by a newer hookq.
func checkSchema(db *bolt.DB, readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keyVersion); len(v) == 8 && binary.BigEndian.Uint64(v) > schemaVersion {
			return fmt.Errorf("file has schema version %d; this hookq reads up to %d",
				binary.BigEndian.Uint64(v), schemaVersion)
		}
		return nil
	}
	if readOnly {
		return db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) == nil {
				return errors.New("not a hookq store (no meta bucket)")
			}
			return check(tx)
		})
	}
	return db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketTasks, bucketSchedule, bucketAttempts,
			bucketKeys, bucketCounts, bucketMeta, bucketTallies} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyVersion) == nil {
			return meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, schemaVersion))
		}
		return nil
	})
}

// Close waits for queued updates to commit and closes the file. It is safe
// to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.ops != nil {
		close(s.ops)
	}
	s.mu.Unlock()

	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Update runs fn in a read-write transaction shared with other updates
// queued at the same moment, and returns once that transaction is on disk.
// The error fn returns is returned by Update, and none of fn's writes are
// kept when it returns one; the other updates still commit. If the commit
// itself fails, every update in it fails.
//
// IMPORTANT: fn runs on the committer goroutine and must not block. It may
// run more than once (when another update in its batch fails after writing,
// the batch is rolled back and run again without it), so it must not have
// effects outside the transaction other than setting its own results.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	if err := s.UpdateAsync(fn, func(err error) { ch <- err }); err != nil {
		return err
	}
	// Once queued, the update is committed or failed within one commit's
	// time; waiting for it keeps the answer honest about what is on disk.
	return <-ch
}

// UpdateAsync queues fn like Update but returns at once; the committer
// calls done with Update's result once the transaction is on disk (or has
// failed). done runs on the committer goroutine and must be quick. If the
// update cannot be queued, UpdateAsync returns the error and never calls
// done. It blocks only while the queue of updates is full.
func (s *Store) UpdateAsync(fn func(*Tx) error, done func(error)) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.ops <- &op{fn: fn, done: done}
	return nil
}

// commitLoop applies queued updates in batches until ops is closed.
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, maxBatch)
	for first := range s.ops {
		// Take everything queued now: no timer, so an idle store commits
		// a lone update at once and a busy one shares each fsync widely.
		batch = append(batch[:0], first)
	drain:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit applies batch in one transaction and answers each update. An
// update that fails after writing spoils the transaction: it is answered
// with its error and the rest of the batch is run again without it.
func (s *Store) commit(batch []*op) {
	errs := make([]error, len(batch))
	for len(batch) > 0 {
		spoiled := -1
		err := s.db.Update(func(btx *bolt.Tx) error {
			tx := newTx(btx)
			for i, o := range batch {
				before := tx.writes
				errs[i] = runOp(o.fn, tx)
				if errs[i] != nil && tx.writes != before {
					spoiled = i
					return errs[i]
				}
			}
			return tx.flush()
		})
		if spoiled >= 0 {
			batch[spoiled].done(errs[spoiled])
			batch = append(batch[:spoiled], batch[spoiled+1:]...)
			errs = errs[:len(batch)]
			continue
		}
		for i, o := range batch {
			if err != nil {
				o.done(fmt.Errorf("commit: %w", err))
				continue
			}
			o.done(errs[i])
		}
		return
	}
}

// runOp calls fn, turning a panic into an error so that one bad update
// cannot stop the committer.
func runOp(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("update panicked: %v", r)
			tx.writes++ // its writes may be half done
		}
	}()
	return fn(tx)
}

// View runs fn in a read-only transaction. Keep fn short: a long read
// transaction stalls a writer that must grow the file.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(newTx(btx)) })
}
