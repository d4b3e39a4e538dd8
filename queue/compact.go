package queue

import "github.com/hookq/hookq/storage"

type (
	// CompactOptions configure Compact. See storage.CompactOptions.
	CompactOptions = storage.CompactOptions
	// CompactResult tells what Compact did: sizes before and after.
	CompactResult = storage.CompactResult
)

// Compact rewrites the queue's file at path without its free pages, so
// that it shrinks to the size of its live data. No process may have the
// queue open: Compact takes the file's lock for the whole copy and fails
// with ErrLocked if another holds it. A crash or kill at any point leaves
// the file at path complete, the original or the copy. See
// storage.Compact.
func Compact(path string, opts *CompactOptions) (*CompactResult, error) {
	return storage.Compact(path, opts)
}
