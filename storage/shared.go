package storage

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// DefaultBucket is the top-level bucket that holds hookq's buckets in a
// database opened by OpenDB, when Options.Bucket names none.
const DefaultBucket = "hookq"

// claimed holds the buckets of writable stores opened by OpenDB and not yet
// closed: bbolt's file lock keeps other processes out of a database, but
// not a second store of this process, whose scheduler would run every task
// a second time.
var claimed = struct {
	sync.Mutex
	m map[claim]bool
}{m: make(map[claim]bool)}

type claim struct {
	db     *bolt.DB
	bucket string
}

// OpenDB opens a store inside db, a bbolt database that its caller opened
// and goes on using for its own data. hookq's buckets live under one
// top-level bucket, Options.Bucket, created if missing, so they never
// collide with the caller's. The buckets under it are those of a file of
// hookq's own, and so is everything else about the store: its committer
// shares db's single writer with the caller, which bbolt serialises.
//
// The caller owns db: Close leaves it open, and the caller must close the
// store before it closes db. While a writable store is open on a bucket of
// db, OpenDB refuses another writable store on it. A read-only db opens a
// read-only store. The options LockTimeout and NoSync do not apply: db was
// opened with its own.
func OpenDB(db *bolt.DB, opts *Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("open store: nil database")
	}
	if opts == nil {
		opts = &Options{}
	}
	name := opts.Bucket
	if name == "" {
		name = DefaultBucket
	}
	s := &Store{
		db:       db,
		root:     []byte(name),
		readOnly: opts.ReadOnly || db.IsReadOnly(),
	}
	if !s.readOnly {
		claimed.Lock()
		taken := claimed.m[claim{db, name}]
		claimed.m[claim{db, name}] = true
		claimed.Unlock()
		if taken {
			return nil, fmt.Errorf("open store in %s: bucket %q is open in another store",
				db.Path(), name)
		}
	}
	if err := s.checkSchema(); err != nil {
		s.release()
		return nil, fmt.Errorf("open store in %s, bucket %q: %w", db.Path(), name, err)
	}
	s.start()
	return s, nil
}

// release gives up the claim of a writable store opened by OpenDB.
func (s *Store) release() {
	if s.ownDB || s.readOnly {
		return
	}
	claimed.Lock()
	delete(claimed.m, claim{s.db, string(s.root)})
	claimed.Unlock()
}

// UpdateTx runs fn on a Tx over btx, a read-write transaction of the
// store's database that its caller began and will commit or roll back
// itself. fn's writes are then kept exactly if the caller commits btx, and
// UpdateTx writes the counters fn changed before it returns, so that btx
// is consistent whenever the caller commits it.
//
// UpdateTx fails at once, writing nothing, on a read-only store, a closed
// store, a read-only transaction or one of another database. If fn fails
// after it wrote, btx holds part of fn's writes, which only a rollback can
// undo: the caller must then roll btx back.
//
// Unlike Update, UpdateTx does not go through the committer: fn runs on
// the caller's goroutine, once, and nothing is on disk until the caller
// commits. While the caller holds btx, the committer waits for it.
func (s *Store) UpdateTx(btx *bolt.Tx, fn func(*Tx) error) error {
	switch {
	case s.readOnly:
		return ErrReadOnly
	case btx.DB() == nil:
		return errors.New("update: transaction is closed")
	case btx.DB() != s.db:
		return fmt.Errorf("update: transaction of %s, not of the store's database %s",
			btx.DB().Path(), s.db.Path())
	case !btx.Writable():
		return errors.New("update: transaction is read-only")
	}
	// Not s.mu: UpdateAsync may hold it while it waits for the committer,
	// which waits for btx.
	if s.closed.Load() {
		return ErrClosed
	}

	tx, err := s.newTx(btx)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	// No commit of the store's own comes to write the counters: write
	// them now, into the caller's transaction.
	if err := tx.flush(); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}
