package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bbolt reads the file through a read-only shared mapping, and every page
// it reads stays mapped into the process, counted in its resident set
// (RssFile), until the mapping goes. Two reads touch every page: the
// rebuild of the free list when a writable store opens (the free list is
// not synced, see openFile), and Check. Those pages are the kernel's page
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
