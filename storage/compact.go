package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CompactOptions configure Compact. The zero value (or nil) means defaults.
type CompactOptions struct {
	// LockTimeout is how long Compact waits for another process to release
	// the store before it fails with ErrLocked. Defaults to 2s.
	LockTimeout time.Duration
	// TxMaxSize bounds the bytes of keys and values copied in one
	// transaction, and so the memory the copy holds. Defaults to 16 MiB.
	TxMaxSize int64
	// Backup, if set, is a path at which the original file is kept (as a
	// hard link, so it costs no copy). It must not exist.
	Backup string
	// Progress, if set, is called after each transaction of the copy with
	// the keys copied so far and the total.
	Progress func(done, total int64)
}

// CompactResult tells what Compact did.
type CompactResult struct {
	// Before and After are the file's sizes in bytes.
	Before, After int64
	// Keys is the number of keys copied.
	Keys int64
}

// TempSuffix is appended to a store's path to name the file a compaction
// writes before it renames it into place. A file left under this name by
// a compaction that was killed is removed by the next one.
const TempSuffix = ".compact"

// defaultTxMaxSize is the default of CompactOptions.TxMaxSize.
const defaultTxMaxSize = 16 << 20

// Compact rewrites the store file at path without its free pages, so that
// the file shrinks to the size of its live data. It takes the store's
// lock for the whole copy, and fails with ErrLocked if another process
// holds it.
//
// The copy is written to path+TempSuffix, synced, and renamed over path,
// and the directory is synced: the file at path is at every moment either
// the original or the complete copy, so a crash or kill at any point
// loses nothing.
func Compact(path string, opts *CompactOptions) (*CompactResult, error) {
	if opts == nil {
		opts = &CompactOptions{}
	}
	lockTimeout := opts.LockTimeout
	if lockTimeout <= 0 {
		lockTimeout = 2 * time.Second
	}
	txMax := opts.TxMaxSize
	if txMax <= 0 {
		txMax = defaultTxMaxSize
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}

	// The lock of the original, held until the copy is in its place. It is
	// taken read-write (exclusive) but nothing writes to it.
	src, err := openLocked(path, &bolt.Options{
		Timeout:        lockTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	defer src.Close()
	if err := (&Store{db: src, readOnly: true}).checkSchema(); err != nil {
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	before, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}

	// With the lock held no other compaction runs here: a file left at
	// the temporary path is a dead one's.
	tmp := path + TempSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("compact: remove stale copy: %w", err)
	}
	keys, err := copyStore(src, tmp, txMax, opts.Progress)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	after, err := os.Stat(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}

	// Keep the original if asked, then put the copy in its place.
	if opts.Backup != "" {
		if err := os.Link(path, opts.Backup); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("compact: keep backup: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	return &CompactResult{Before: before.Size(), After: after.Size(), Keys: keys}, nil
}

// copyStore copies every bucket of src into a new file at dst in
// transactions of about txMax bytes, syncs it and returns the keys copied.
func copyStore(src *bolt.DB, dst string, txMax int64,
	progress func(done, total int64)) (int64, error) {
	out, err := bolt.Open(dst, 0o600, &bolt.Options{
		NoSync:         true, // synced once, whole, before the rename
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return 0, fmt.Errorf("create copy: %w", err)
	}
	defer func() {
		if out != nil {
			out.Close()
		}
	}()

	var copied int64
	err = src.View(func(stx *bolt.Tx) error {
		// Count first, so that progress has a total.
		var total int64
		err := stx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			total += int64(b.Stats().KeyN)
			return nil
		})
		if err != nil {
			return err
		}
		if progress != nil {
			progress(0, total)
		}

		dtx, err := out.Begin(true)
		if err != nil {
			return err
		}
		defer func() { dtx.Rollback() }()
		var size int64
		err = stx.ForEach(func(name []byte, sb *bolt.Bucket) error {
			if _, err := dtx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
			seq := sb.Sequence()
			c := sb.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil {
					return fmt.Errorf("bucket %s holds a nested bucket %q, "+
						"which no hookq store has", name, k)
				}
				// Commit when the transaction is full, and go on in a
				// new one.
				if size += int64(len(k) + len(v)); size > txMax {
					if err := dtx.Commit(); err != nil {
						return fmt.Errorf("commit copy: %w", err)
					}
					if progress != nil {
						progress(copied, total)
					}
					if dtx, err = out.Begin(true); err != nil {
						return err
					}
					size = int64(len(k) + len(v))
				}
				db := dtx.Bucket(name)
				db.FillPercent = 1.0 // keys come in order: fill every page
				if err := db.Put(k, v); err != nil {
					return fmt.Errorf("copy %s: %w", name, err)
				}
				copied++
			}
			return dtx.Bucket(name).SetSequence(seq)
		})
		if err != nil {
			return err
		}
		if err := dtx.Commit(); err != nil {
			return fmt.Errorf("commit copy: %w", err)
		}
		if progress != nil {
			progress(copied, total)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}

	// bbolt grows a file ahead of its data; the copy needs only up to its
	// highest page.
	var used int64
	if err := out.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		return 0, err
	}
	err = out.Close()
	out = nil
	if err != nil {
		return 0, fmt.Errorf("close copy: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > used {
		if err := f.Truncate(used); err != nil {
			return 0, fmt.Errorf("trim copy: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync copy: %w", err)
	}
	return copied, f.Close()
}

// syncDir flushes a directory's entries, so that a rename in it survives
// a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
