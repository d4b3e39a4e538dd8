package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bbolt reads the file through a read-only shared mapping, and every page
// it reads stays mapped into the process, counted in its resident set
// (RssFile), until the mapping goes. Two reads touch every page: the
// rebuild of the free list when a writable store opens (the free list is
// not synced, see openFile), and Check. Walks over the tasks (listings
// that filter, bulk changes, the retention sweep over old tasks) touch
// as many pages as they read records. Those pages are the kernel's page
// cache, shared and reclaimable, but a store of a million tasks would show
// as 200 MB more resident memory for the life of the process.
//
// releaseMapped gives them back after such a read: the pages leave the
// process's page tables but stay in the page cache, so the next read of
// one is a minor fault, not a disk read, and nothing in the mapping
// changes (it is of the file, never written through).
//
// A mapping that grows is replaced by a new one, with nothing resident,
// so only reads since the last remap count. A database that an application
// opened and passed to OpenDB is the application's: its mapping is left
// alone.
func (s *Store) releaseMapped() error {
	if !s.ownDB {
		return nil
	}
	s.walked.Store(0)
	// The read transaction holds bbolt's mapping lock: the mapping cannot
	// move or go while its pages are dropped.
	err := s.db.View(func(tx *bolt.Tx) error {
		return dropResident(s.db.Info().Data, tx.Size())
	})
	if err != nil {
		return fmt.Errorf("release mapped pages of %s: %w", s.db.Path(), err)
	}
	return nil
}

// releaseEvery is how many records walks may read before the store gives
// back the pages they mapped. It bounds what walks add to the resident
// set to that many records' pages and the neighbours the kernel maps
// with each (a few MB to some tens), at the cost of a madvise (0.1-0.5 ms
// at this size) and of minor faults to map the pages in use again.
const releaseEvery = 20000

// noteRead counts n records read by the walks of a transaction that has
// ended, and gives back the mapped pages once releaseEvery are counted.
func (s *Store) noteRead(n int) {
	if n == 0 || !s.ownDB {
		return
	}
	if s.walked.Add(int64(n)) >= releaseEvery && s.walked.Swap(0) >= releaseEvery {
		// As in openFile, a failure costs only reclaimable memory.
		_ = s.releaseMapped()
	}
}
