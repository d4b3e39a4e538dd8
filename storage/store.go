// Package storage keeps hookq's tasks in one bbolt file: the task records
// under their ULIDs, a schedule index ordered by run time, the attempts of
// each task, idempotency keys and per-state counters. Open opens a file of
// hookq's own, where these buckets are top-level; OpenDB opens a store in a
// database an application opened, under one bucket of the application's
// database, and UpdateTx writes in the application's own transactions.
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
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/hookq/hookq/internal/failpoint"
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
	// ErrDamaged reports a store file whose pages cannot be read: it was
	// damaged outside hookq (a disk error, a partial copy, an edit).
	ErrDamaged = errors.New("the store file is damaged")
	// ErrNoSpace reports a commit that failed because the store's file
	// could not grow: its file system is full, or a quota or file size
	// limit was reached. Nothing of the commit was kept; the store stays
	// readable, and writes succeed again once there is room.
	ErrNoSpace = errors.New("no space left for the store")
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

	// allBuckets are the buckets of a store, created when it is.
	allBuckets = [][]byte{bucketTasks, bucketSchedule, bucketAttempts,
		bucketKeys, bucketCounts, bucketMeta, bucketTallies}
	keyVersion = []byte("version")
)

// maxBatch bounds how many updates share one commit, so one commit's latency
// stays bounded under a flood of writers.
const maxBatch = 4096

// Options configure Open and OpenDB. The zero value (or nil) means
// defaults.
type Options struct {
	// ReadOnly opens the store for reading only; writes fail with
	// ErrReadOnly. Open then takes a shared lock on the file, so several
	// read-only opens may share a file, but not with a writer. OpenDB
	// opens a read-only store on a read-only database whatever ReadOnly
	// says. Defaults to false.
	ReadOnly bool
	// LockTimeout is how long Open waits for another process to release
	// the file before it fails with ErrLocked. Zero or negative means 2s.
	// OpenDB ignores it: the caller opened the database.
	LockTimeout time.Duration
	// NoSync skips the fsync of each commit. Only for tests and benchmarks:
	// a crash may then lose acknowledged writes. Defaults to false. OpenDB
	// ignores it: the database's own NoSync applies.
	NoSync bool
	// Bucket names the top-level bucket that holds hookq's buckets in a
	// database opened by OpenDB. Empty means DefaultBucket ("hookq"). Open
	// ignores it: in a file of hookq's own the buckets are top-level.
	Bucket string
}

// Store is an open hookq store. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	ownDB    bool   // Close closes db: Open opened it
	root     []byte // the bucket holding hookq's buckets; nil: top-level
	readOnly bool

	mu     sync.RWMutex // held to close ops, and to send on it while open
	closed atomic.Bool  // set under mu; read without it by UpdateTx
	walked atomic.Int64 // records read by walks since the last releaseMapped
	ops    chan *op
	done   chan struct{} // closed when the committer has exited
	arena  *arena        // the committer's, for the values it puts
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

	s, err := openFile(path, opts, lockTimeout)
	if err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// openFile opens the bbolt file and checks its schema. Opening walks the
// file's pages (the free list is rebuilt, not read), so a damaged page
// shows here: bbolt panics or reads outside its mapping, which this turns
// into ErrDamaged rather than a crash.
func openFile(path string, opts *Options, lockTimeout time.Duration) (s *Store, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if s != nil {
				s.db.Close()
			}
			s, err = nil, fmt.Errorf("open store %s: %w (%v): run \"hookq check\" for a report, "+
				"and restore the file from a backup", path, ErrDamaged, r)
		}
	}()
	db, err := openLocked(path, &bolt.Options{
		Timeout:        lockTimeout,
		ReadOnly:       opts.ReadOnly,
		NoSync:         opts.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	s = &Store{db: db, ownDB: true, readOnly: opts.ReadOnly}
	if err := s.checkSchema(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// The rebuild of the free list mapped every page into the process.
	// Failing to give them back costs only memory that the kernel can
	// reclaim: the store is open all the same.
	_ = s.releaseMapped()
	return s, nil
}

// openLocked opens the bbolt file at path and waits for its lock. A file
// replaced while Open waited for the lock (a compaction renames a new file
// over the old one, whose lock it held) would leave this process with the
// old, unlinked file: Open notices that the path no longer names the file
// it locked and opens it again.
func openLocked(path string, opts *bolt.Options) (*bolt.DB, error) {
	const tries = 3
	for i := 1; ; i++ {
		before, statErr := os.Stat(path)
		db, err := bolt.Open(path, 0o600, opts)
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
		}
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		if statErr != nil {
			return db, nil // a new file: nothing could have replaced it
		}
		after, err := os.Stat(path)
		if err == nil && os.SameFile(before, after) {
			return db, nil
		}
		db.Close()
		if i == tries {
			return nil, fmt.Errorf("open store %s: the file was replaced %d times while "+
				"waiting for its lock", path, tries)
		}
	}
}

// start starts the committer of a writable store.
func (s *Store) start() {
	s.done = make(chan struct{})
	if s.readOnly {
		close(s.done)
		return
	}
	s.ops = make(chan *op, maxBatch)
	s.arena = &arena{}
	go s.commitLoop()
}

// parent is what holds hookq's buckets: the bolt.Tx itself in a file of
// hookq's own, or one bucket of a database shared with its caller. Both
// types look buckets up the same way.
type parent interface {
	Bucket(name []byte) *bolt.Bucket
	CreateBucketIfNotExists(name []byte) (*bolt.Bucket, error)
}

// parent returns what holds hookq's buckets in btx. It fails if the
// bucket holding them is missing: the caller of OpenDB deleted it.
func (s *Store) parent(btx *bolt.Tx) (parent, error) {
	if s.root == nil {
		return btx, nil
	}
	b := btx.Bucket(s.root)
	if b == nil {
		return nil, fmt.Errorf("no bucket %q in %s", s.root, s.db.Path())
	}
	return b, nil
}

// checkSchema creates the buckets of a new store and refuses one written
// by a newer hookq.
func (s *Store) checkSchema() error {
	check := func(p parent) error {
		meta := p.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keyVersion); len(v) == 8 && binary.BigEndian.Uint64(v) > schemaVersion {
			return fmt.Errorf("store has schema version %d; this hookq reads up to %d",
				binary.BigEndian.Uint64(v), schemaVersion)
		}
		return nil
	}
	if s.readOnly {
		return s.db.View(func(tx *bolt.Tx) error {
			p, err := s.parent(tx)
			if err != nil {
				return fmt.Errorf("not a hookq store: %w", err)
			}
			if p.Bucket(bucketMeta) == nil {
				return errors.New("not a hookq store, or its root page is damaged (no meta bucket)")
			}
			return check(p)
		})
	}
	// A store with all its buckets and a version is only checked: opening
	// it must not write (a commit would change the file for nothing, and
	// fail on a full disk).
	complete := false
	err := s.db.View(func(tx *bolt.Tx) error {
		p, err := s.parent(tx)
		if err != nil {
			return nil // no root bucket yet: the update creates it
		}
		for _, name := range allBuckets {
			if p.Bucket(name) == nil {
				return nil
			}
		}
		if p.Bucket(bucketMeta).Get(keyVersion) == nil {
			return nil
		}
		complete = true
		return check(p)
	})
	if err != nil || complete {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		var p parent = tx
		if s.root != nil {
			b, err := tx.CreateBucketIfNotExists(s.root)
			if err != nil {
				return fmt.Errorf("create bucket %s: %w", s.root, err)
			}
			p = b
		}
		if err := check(p); err != nil {
			return err
		}
		for _, name := range allBuckets {
			if _, err := p.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := p.Bucket(bucketMeta)
		if meta.Get(keyVersion) == nil {
			return meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, schemaVersion))
		}
		return nil
	})
}

// Close waits for queued updates to commit and closes the file. A store
// opened by OpenDB leaves the database open: its caller owns it. Close is
// safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	if s.ops != nil {
		close(s.ops)
	}
	s.mu.Unlock()

	<-s.done
	if !s.ownDB {
		s.release()
		return nil
	}
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
	if s.closed.Load() {
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
		// Once the queue is empty, yield once and take what the writers
		// ready to run meanwhile queued: under load that halves the
		// commits (each costs two fsyncs and their CPU), and with nothing
		// else to run the yield returns at once.
		batch = append(batch[:0], first)
		yielded := false
	drain:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				if !yielded {
					yielded = true
					runtime.Gosched()
					continue
				}
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
	read := 0 // records walked by the runs of the batch
	for len(batch) > 0 {
		spoiled := -1
		err := s.update(func(btx *bolt.Tx) error {
			tx, err := s.newTx(btx)
			if err != nil {
				return err
			}
			defer func() { read += tx.read }()
			// No transaction holds the arena's values now: the last one
			// has committed or rolled back.
			s.arena.reset()
			tx.arena = s.arena
			for i, o := range batch {
				before := tx.writes
				errs[i] = runOp(o.fn, tx)
				if errs[i] != nil && tx.writes != before {
					spoiled = i
					return errs[i]
				}
				failpoint.Hit(failpoint.CommitBatch)
			}
			if err := tx.flush(); err != nil {
				return err
			}
			failpoint.Hit(failpoint.CommitBeforeSync)
			return nil
		})
		if spoiled >= 0 {
			batch[spoiled].done(errs[spoiled])
			batch = append(batch[:spoiled], batch[spoiled+1:]...)
			errs = errs[:len(batch)]
			continue
		}
		if err != nil {
			err = commitError(err)
		} else {
			failpoint.Hit(failpoint.CommitAfterSync)
		}
		// Before the answers, so that an update that walked the store
		// returns with the pages it read given back.
		s.noteRead(read)
		for i, o := range batch {
			if err != nil {
				o.done(err)
				continue
			}
			o.done(errs[i])
		}
		return
	}
}

// commitError wraps the error of a failed commit, marking with ErrNoSpace
// one that says the file could not grow. bbolt flattens some of those into
// text, so the text is read as well as the error chain.
func commitError(err error) error {
	msg := err.Error()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EFBIG) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EFBIG.Error()) ||
		strings.Contains(msg, syscall.EDQUOT.Error()) {
		return fmt.Errorf("commit: %w (%v)", ErrNoSpace, err)
	}
	return fmt.Errorf("commit: %w", err)
}

// update runs fn in a read-write transaction of bbolt's, turning a panic
// or a fault in bbolt (a damaged page met while it writes) into ErrDamaged
// for every update of the batch, rather than a crash of the committer. A
// panic of an update itself is caught earlier, by runOp.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer readGuard(&err, debug.SetPanicOnFault(true))
	return s.db.Update(fn)
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

// Backup writes a consistent copy of the store's file to w from one read
// transaction, while updates go on, and returns the bytes written. The copy
// is a bbolt file that Open accepts. Updates that commit during the copy
// are not in it; a writer that must grow the file waits for the copy to
// end. For a store opened with OpenDB the copy is of the whole database,
// the caller's buckets included.
func (s *Store) Backup(w io.Writer) (n int64, err error) {
	defer readGuard(&err, debug.SetPanicOnFault(true))
	if s.closed.Load() {
		return 0, ErrClosed
	}
	err = s.db.View(func(btx *bolt.Tx) error {
		var err error
		n, err = btx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

// Check verifies the whole file in one read transaction: bbolt's own
// consistency check of its pages, then hookq's invariants (see Tx.Check).
// It returns every problem found, or nil. It reads every page, so it takes
// time in proportion to the file's size; the pages it read leave the
// process's resident set when it returns (see releaseMapped).
func (s *Store) Check() []error {
	var problems []error
	defer func() { _ = s.releaseMapped() }()
	err := s.db.View(func(btx *bolt.Tx) error {
		for err := range btx.Check() {
			problems = append(problems, fmt.Errorf("bbolt: %w", err))
		}
		if len(problems) > 0 {
			// Reading records over broken pages could panic.
			return nil
		}
		tx, err := s.newTx(btx)
		if err != nil {
			return err
		}
		problems = append(problems, safeCheck(tx)...)
		return nil
	})
	if err != nil {
		problems = append(problems, fmt.Errorf("check: %w", err))
	}
	return problems
}

// safeCheck runs Tx.Check, turning a panic or a memory fault while
// reading a damaged record into a problem.
func safeCheck(tx *Tx) (problems []error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if mb, ok := r.(missingBucket); ok {
				problems = append(problems, mb.error())
				return
			}
			problems = append(problems, fmt.Errorf("reading the store failed: %v", r))
		}
	}()
	return tx.Check()
}

// View runs fn in a read-only transaction. Keep fn short: a long read
// transaction stalls a writer that must grow the file. A read that trips
// over a damaged page (bbolt panics, or reads outside its mapping) fails
// with ErrDamaged instead of crashing the process.
func (s *Store) View(fn func(*Tx) error) (err error) {
	defer readGuard(&err, debug.SetPanicOnFault(true))
	read := 0
	err = s.db.View(func(btx *bolt.Tx) error {
		tx, err := s.newTx(btx)
		if err != nil {
			return err
		}
		defer func() { read = tx.read }()
		return fn(tx)
	})
	s.noteRead(read)
	return err
}

// readGuard turns a panic or a memory fault while bbolt reads the file
// into an ErrDamaged error: bbolt asserts that each page it reads is the
// page it asked for, and reads past its mapping when a page's header lies.
// Call it at the top of a function that reads the store, as
//
//	defer readGuard(&err, debug.SetPanicOnFault(true))
//
// which turns faults into panics until the function returns.
func readGuard(err *error, faultWas bool) {
	r := recover()
	debug.SetPanicOnFault(faultWas)
	if mb, ok := r.(missingBucket); ok {
		*err = mb.error()
		return
	}
	if r != nil {
		*err = fmt.Errorf("%w (%v): run \"hookq check\" for a report", ErrDamaged, r)
	}
}
