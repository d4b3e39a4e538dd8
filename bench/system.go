package main

import (
	"context"
	"time"
)

// A system is one queue under test, or a baseline. Every method but
// durability, start and stop is optional, through the interfaces below: a
// figure a system has no method for is reported as not applicable.
type system interface {
	// durability says what an acknowledged enqueue survives, as printed
	// beside the figures.
	durability() string
	// start starts the servers the system needs, with no data yet.
	start(ctx context.Context, e *env) error
	// stop stops everything start started. It is called even when start
	// failed part way.
	stop() error
}

// resetter empties a system's store between phases. With workers false
// no task may be dispatched. With workers true the system gets ready for
// runner.run: hookq's workers run from the start (they wait on no timer,
// and a server cannot hold them back), while a peer starts its workers in
// run once every task is enqueued, so that no idle poll interval delays
// the first fetch.
type resetter interface {
	reset(ctx context.Context, workers bool) error
}

// serverer reports the PIDs of the server processes a system runs now,
// whose CPU time and memory are charged to it.
type serverer interface {
	servers() []int
}

// storer reports the directories that hold a system's data.
type storer interface {
	dirs() []string
}

// sizer reports the bytes a system's stored data takes on disk, where the
// blocks of its directories would mislead: a database that keeps a write-
// ahead log it recycles, or an append-only file that rewrites itself.
// Zero means nothing is on disk.
type sizer interface {
	size(ctx context.Context) (int64, error)
}

// enqueuer stores task i durably, with no workers running.
type enqueuer interface {
	enqueue(ctx context.Context, i int) error
}

// concurrentEnqueuer is used instead of enqueuer when many producers
// enqueue at once and a system has a path of its own for that.
type concurrentEnqueuer interface {
	enqueueConcurrent(ctx context.Context, i int) error
}

// batcher stores tasks [from, to) durably with the system's batch API.
type batcher interface {
	enqueueBatch(ctx context.Context, from, to int) error
}

// runner enqueues tasks [0, n), with its batch API where it has one, and
// returns once the result of every one is stored. Its workers are tuned
// for throughput.
type runner interface {
	run(ctx context.Context, n int) error
}

// latencer runs tasks one at a time with the system's default settings,
// from a fresh store, and returns the time from the call that enqueued
// each to its result being stored. It stops after count tasks or when
// budget has passed, whichever comes first.
type latencer interface {
	latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error)
}

// prober measures a store holding n pending tasks: reopen, stats and the
// first page of a listing. It is called right after the batch phase.
type prober interface {
	probe(ctx context.Context) (*Pending, error)
}

// env is what a system is given to run: where to put its data and what to
// call.
type env struct {
	// dir is a fresh directory of the system's own.
	dir string
	// url is the receiver's /multiply URL.
	url string
	// hookqBin is the hookq binary, for the server.
	hookqBin string
	// redisFsync is Redis's appendfsync: always, everysec, or no for no
	// persistence at all.
	redisFsync string
	// sqliteSync is SQLite's synchronous pragma: FULL or NORMAL.
	sqliteSync string
}

// systemNames lists every system in the order they run.
var systemNames = []string{
	"hookq", "hookq-serve", "asynq", "asynq-memory", "river-pg", "river-sqlite", "goqite",
	"bbolt", "bbolt-loop", "http",
}

// isHookq reports whether name is one of hookq's own systems, which run at
// every task count; the others stop at -peer-max.
func isHookq(name string) bool { return name == "hookq" || name == "hookq-serve" }

// newSystem returns the system called name, or nil if there is none.
func newSystem(name string) system {
	switch name {
	case "hookq":
		return &hookqEmbedded{}
	case "hookq-serve":
		return &hookqServe{}
	case "asynq":
		return &asynqSystem{}
	case "asynq-memory":
		return &asynqSystem{memory: true}
	case "river-pg":
		return &riverPG{}
	case "river-sqlite":
		return &riverSQLite{}
	case "goqite":
		return &goqiteSystem{}
	case "bbolt":
		return &bboltSystem{}
	case "bbolt-loop":
		return &bboltLoop{}
	case "http":
		return &httpBaseline{}
	}
	return nil
}
