// Package failpoint marks hookq's durability boundaries so that tests can
// crash a real process at exactly one of them.
//
// A production build compiles every Hit to nothing. A build with the tag
// "failpoints" reads HOOKQ_FAILPOINTS, a comma-separated list of name=N,
// and kills its own process with SIGKILL at the Nth time it reaches the
// named point: the same as a kill -9 that lands there, with no deferred
// function, flush or sync run after it.
//
//	go build -tags failpoints -o hookq-fp ./cmd/hookq
//	HOOKQ_FAILPOINTS=commit.after-sync=3 ./hookq-fp serve
//
// The points are listed in Points.
package failpoint

// The failpoints, named after the boundary they mark.
const (
	// CommitBatch is reached inside a group commit after each update has
	// been applied to the transaction: a crash there commits nothing of
	// the batch.
	CommitBatch = "commit.batch"
	// CommitBeforeSync is reached once every update of a batch is in the
	// transaction, just before bbolt writes and syncs it.
	CommitBeforeSync = "commit.before-sync"
	// CommitAfterSync is reached once a batch is on disk, before any of
	// its writers is told.
	CommitAfterSync = "commit.after-sync"
	// EnqueueAfterCommit is reached once an enqueue is on disk, before
	// Enqueue returns (before the API answers 201).
	EnqueueAfterCommit = "enqueue.after-commit"
	// OutcomeBeforeCommit is reached when an attempt's reply has been read
	// and classified, before its outcome is handed to the committer.
	OutcomeBeforeCommit = "outcome.before-commit"
	// OutcomeAfterCommit is reached once an attempt's outcome is on disk,
	// before its lease is dropped and waiters are woken.
	OutcomeAfterCommit = "outcome.after-commit"
	// SweepBetweenBatches is reached after each committed transaction of
	// a retention sweep or purge, before the next one.
	SweepBetweenBatches = "sweep.between-batches"
)

// Points lists every failpoint.
var Points = []string{CommitBatch, CommitBeforeSync, CommitAfterSync, EnqueueAfterCommit,
	OutcomeBeforeCommit, OutcomeAfterCommit, SweepBetweenBatches}
