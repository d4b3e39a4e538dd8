// Package queue is hookq's embeddable API: a durable queue of HTTP callback
// tasks kept in one bbolt file, with a scheduler and a worker pool that make
// the calls, retry transient failures with exponential backoff and store
// each task's result under its ID.
//
// Open keeps the queue in a bbolt file of its own. OpenDB keeps it inside a
// bbolt database the application already uses, under one bucket, so that
// EnqueueTx can enqueue a task in the same transaction as the
// application's own writes: the task exists if and only if that
// transaction commits.
//
// Enqueue returns only once the task is on disk. Leases live in memory: the
// process that opened the queue is the store's only writer, so when it dies
// its leases die with it, and on the next Open every unfinished task is ready
// again. Delivery is therefore at-least-once; endpoints dedupe on the
// webhook-id header, which is the task's ID.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hookq/hookq/dispatch"
	"github.com/hookq/hookq/storage"
)

// Types shared with the storage layer, so that users import queue alone.
type (
	// Task is a task with its state and outcome. See storage.Task.
	Task = storage.Task
	// ID is a task's ULID.
	ID = storage.ID
	// State is where a task is in its life.
	State = storage.State
	// Attempt is the record of one try of a task.
	Attempt = storage.Attempt
	// Error says why a task or attempt failed.
	Error = storage.Error
	// Duration is a time.Duration written in JSON as "15s".
	Duration = storage.Duration
)

// The states of a task.
const (
	Scheduled = storage.Scheduled
	Pending   = storage.Pending
	Active    = storage.Active
	Retrying  = storage.Retrying
	Succeeded = storage.Succeeded
	Failed    = storage.Failed
	Cancelled = storage.Cancelled
)

// Errors returned by the queue. Compare with errors.Is.
var (
	// ErrNotFound reports that no task has the given ID.
	ErrNotFound = storage.ErrNotFound
	// ErrClosed reports a call on a closed queue.
	ErrClosed = errors.New("queue closed")
	// ErrLocked reports that another process holds the store.
	ErrLocked = storage.ErrLocked
	// ErrNoSpace reports a write that failed because the store's file
	// could not grow (a full file system, a quota, a file size limit).
	// Nothing of it was stored; reads go on, and writes succeed again
	// once there is room.
	ErrNoSpace = storage.ErrNoSpace
	// ErrReadOnly reports a write to a queue opened with ReadOnly.
	ErrReadOnly = storage.ErrReadOnly
	// ErrFinal reports a Cancel of a task that has already finished.
	ErrFinal = errors.New("task is already final")
	// ErrNotFinal reports a Retry of a task that has not finished.
	ErrNotFinal = errors.New("task is not final")
	// ErrKeyHeld reports a Retry of a cancelled task whose idempotency key
	// another task took meanwhile; cancel that task first.
	ErrKeyHeld = storage.ErrKeyHeld
)

// ParseID parses the text form of a task ID.
func ParseID(s string) (ID, error) { return storage.ParseID(s) }

// ParseState parses a state name such as "pending".
func ParseState(s string) (State, error) { return storage.ParseState(s) }

// Options configure a queue. A nil *Options means all defaults; each zero
// field means its default, and so does a negative one unless its doc says
// otherwise.
type Options struct {
	// Workers is the number of concurrent attempts, at most MaxWorkers
	// (10,000; more is cut down to it). Defaults to 128.
	Workers int
	// PerHost bounds the attempts in flight to one host (host:port), so one
	// slow endpoint cannot take every worker. Zero means no limit.
	PerHost int
	// PerHostRate bounds the attempts started to one host per second,
	// with bursts of up to that many (at least one). Zero means no limit.
	PerHostRate float64
	// MaxAttempts is the attempt limit of a task whose spec sets none.
	// Defaults to 10.
	MaxAttempts int
	// Timeout is the per-attempt deadline of a task whose spec sets none.
	// Defaults to 15s.
	Timeout time.Duration
	// BackoffBase is the delay before the first retry; retry n waits
	// about BackoffBase·2^n, with 20% jitter. Defaults to 1s.
	BackoffBase time.Duration
	// BackoffCap bounds the delay between attempts, including one asked
	// for by Retry-After. Defaults to 1h.
	BackoffCap time.Duration
	// MaxAge bounds how long after its first run time (or its last Retry)
	// a task may still be retried: a retry that would start later fails
	// the task instead. Defaults to 24h.
	MaxAge time.Duration
	// Retention is how long a finished task is kept after it finished;
	// a background sweep then deletes it with its attempts. Negative
	// keeps finished tasks forever. Defaults to 7 days.
	Retention time.Duration
	// Grace is how long Close lets in-flight attempts finish before it
	// cancels them (they run again after the next Open). It is wall time,
	// whatever Clock says. Defaults to 10s.
	Grace time.Duration
	// Dispatch configures the HTTP side: guard, signing secrets, body
	// limit, redirects, user agent; its zero value means dispatch's
	// defaults. Its Timeout is ignored in favour of each task's, and its
	// MaxConnsPerHost defaults to Workers, or PerHost when that is lower.
	Dispatch dispatch.Options
	// Logger receives the queue's logs: Info when the queue opens and
	// closes and when a task finishes, Debug for an attempt to be retried,
	// Warn and Error for trouble no caller sees. Nil means no logging.
	Logger *slog.Logger
	// Clock tells the time and makes timers. Nil means the system clock.
	Clock Clock
	// DisableWorkers opens the queue for enqueue and inspection only: no
	// task is dispatched, and Wait fails with ErrNoWorkers for a task that
	// is not final. The CLI uses it when no server is running. Defaults
	// to false.
	DisableWorkers bool
	// ReadOnly opens the store read-only, sharing a file of hookq's own
	// with other readers; writes fail with ErrReadOnly and no task is
	// dispatched. OpenDB on a read-only database implies it. Defaults to
	// false.
	ReadOnly bool
	// LockTimeout is how long Open waits for another process to release
	// the store before failing with ErrLocked. Defaults to 2s. OpenDB
	// ignores it: the application opened the database.
	LockTimeout time.Duration
	// NoSync skips fsync on commit. For tests and benchmarks only: a crash
	// may then lose acknowledged tasks. Defaults to false. OpenDB ignores
	// it: the database's own NoSync applies.
	NoSync bool
	// Bucket names the top-level bucket that holds hookq's buckets in a
	// database opened by OpenDB. Defaults to "hookq". Open ignores it: in
	// a file of hookq's own the buckets are top-level.
	Bucket string

	// OnEnqueue, if set, is called after each commit of Enqueue or
	// EnqueueMany that stored tasks or matched keys. Like OnAttempt it
	// runs on the queue's reporter goroutine. Nil means none.
	OnEnqueue func(EnqueueEvent)
	// OnAttempt, if set, is called once per attempt after its outcome is
	// on disk, with the task's ID, URL (without userinfo), outcome, status
	// and duration. Nil means none.
	//
	// OnEnqueue and OnAttempt are called on one goroutine of the queue's
	// own, in commit order and never concurrently, after the waiters of
	// the task have been woken. A slow callback delays the events after it
	// (and the log lines of attempts, written on the same goroutine) but
	// never dispatch or commits: up to 65,536 events wait for it, and
	// further ones are dropped and counted by DroppedEvents. Close
	// delivers every event queued before it returns.
	OnAttempt func(AttemptEvent)
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	setDefault(&c.Workers, DefaultWorkers)
	c.Workers = min(c.Workers, MaxWorkers)
	setDefault(&c.MaxAttempts, 10)
	setDefault(&c.Timeout, 15*time.Second)
	setDefault(&c.BackoffBase, time.Second)
	setDefault(&c.BackoffCap, time.Hour)
	setDefault(&c.MaxAge, 24*time.Hour)
	setDefault(&c.Grace, 10*time.Second)
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.ReadOnly {
		c.DisableWorkers = true
	}
	return c
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Limits of the options.
const (
	// MaxWorkers bounds Options.Workers: each worker is a goroutine with a
	// connection, and far more only queues requests in the kernel.
	MaxWorkers = 10000
	// DefaultWorkers is the number of workers when Options sets none.
	DefaultWorkers = 128
)

// Queue is an open queue. It is safe for concurrent use.
type Queue struct {
	opts  Options
	store *storage.Store
	disp  *dispatch.Dispatcher
	clock Clock
	log   *slog.Logger
	ids   *idSource

	// mu guards leases and waiters. It may be held while opening a store
	// transaction (the scheduler does), so it must never be taken inside
	// one: a writer growing the file would deadlock the two. closed is set
	// under mu, so a scan under mu sees it, but read without it elsewhere.
	mu     sync.Mutex
	closed atomic.Bool
	leases map[ID]*lease
	hosts  map[string]*hostGate // per-host limits, when set
	// scanFrom is the schedule key where the next scan starts: the last
	// task leased. Entries before it are leased. See reschedule.
	scanFrom []byte
	waiters  map[ID]*waiter
	// storeFailures counts outcome commits failed in a row; while it is
	// not zero the scheduler leases nothing before pausedUntil.
	storeFailures int
	pausedUntil   time.Time

	wake      chan struct{} // a new or rescheduled task may be due
	work      chan *lease   // leased tasks for the workers
	slots     chan struct{} // one token per lease the workers can take
	stop      context.CancelFunc
	abort     context.CancelFunc // ends attemptCx (see abortAttempts)
	attemptCx context.Context    // done once Close aborts the attempts in flight
	group     *errgroup.Group
	closeOnce sync.Once
	closeErr  error

	report   *reporter // delivers events off the committer
	urlViews urlViews  // for the reporter's events
	// knownURLs are URLs of recent enqueues that were valid.
	knownURLs knownURLs
	// reportAttempts is set when attempts have an observer or a log.
	reportAttempts bool

	hooks hooks
}

// hooks are signals for tests, set before any goroutine starts.
type hooks struct {
	// afterAttempt is called once an attempt's outcome is stored and its
	// lease dropped.
	afterAttempt func(id ID, att *Attempt)
	// afterSweep is called after each background retention sweep.
	afterSweep func(deleted int)
}

// Open opens the queue stored in the bbolt file at path, creating it if
// needed, and starts dispatching unless opts says not to.
func Open(path string, opts *Options) (*Queue, error) {
	return open(path, opts, hooks{})
}

// open is Open with hooks for tests, set before any worker starts.
func open(path string, opts *Options, h hooks) (*Queue, error) {
	o := opts.withDefaults()
	store, err := storage.Open(path, &storage.Options{
		ReadOnly:    o.ReadOnly,
		LockTimeout: o.LockTimeout,
		NoSync:      o.NoSync,
	})
	if err != nil {
		return nil, err
	}
	return newQueue(store, o, h, path)
}

// newQueue returns a queue over store and starts it unless o says not to.
// path names the store's file in logs. On error it closes store.
func newQueue(store *storage.Store, o Options, h hooks, path string) (*Queue, error) {
	q := &Queue{
		opts:    o,
		store:   store,
		clock:   o.Clock,
		log:     o.Logger,
		ids:     newIDSource(),
		leases:  make(map[ID]*lease),
		hosts:   make(map[string]*hostGate),
		waiters: make(map[ID]*waiter),
		wake:    make(chan struct{}, 1),

		hooks: h,
	}
	q.report = newReporter(q.deliver)
	q.reportAttempts = o.OnAttempt != nil || h.afterAttempt != nil ||
		o.Logger.Enabled(context.Background(), slog.LevelError)
	if o.DisableWorkers {
		return q, nil
	}

	dopts := o.Dispatch
	dopts.Timeout = o.Timeout
	if dopts.MaxConnsPerHost == 0 {
		// As many connections to a host as attempts can be in flight to
		// it, all kept alive between attempts.
		dopts.MaxConnsPerHost = o.Workers
		if o.PerHost > 0 {
			dopts.MaxConnsPerHost = min(o.PerHost, o.Workers)
		}
	}
	var err error
	q.disp, err = dispatch.New(dopts)
	if err != nil {
		store.Close()
		q.report.close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	q.start()
	q.log.Info("queue opened", slog.String(keyPath, path), slog.Int(keyWorkers, o.Workers))
	return q, nil
}

// start launches the scheduler and the workers.
func (q *Queue) start() {
	ctx, stop := context.WithCancel(context.Background())
	q.stop = stop
	q.attemptCx, q.abort = context.WithCancel(context.Background())
	q.work = make(chan *lease, q.opts.Workers)
	q.slots = make(chan struct{}, q.opts.Workers)
	for range q.opts.Workers {
		q.slots <- struct{}{}
	}
	q.group = new(errgroup.Group)
	q.group.Go(func() error { return q.schedule(ctx) })
	if q.opts.Retention > 0 {
		q.group.Go(func() error { return q.retain(ctx) })
	}
	for range q.opts.Workers {
		q.group.Go(func() error { return q.runWorker(ctx) })
	}
}

// Close stops leasing tasks, lets in-flight attempts finish within the
// grace period, cancels those still running (they run again after the next
// Open), and closes the store. It is safe to call more than once.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed.Store(true)
		q.mu.Unlock()

		if q.group != nil {
			q.stop()
			done := make(chan struct{})
			go func() { q.group.Wait(); close(done) }()
			// The grace period is wall time even under a test clock: it
			// bounds how long Close may block a caller.
			timer := time.NewTimer(q.opts.Grace)
			select {
			case <-done:
			case <-timer.C:
				q.log.Warn("grace period over; cancelling in-flight attempts")
				q.abortAttempts()
				<-done
			}
			timer.Stop()
			q.abortAttempts()
			q.disp.Close()
		}
		q.wakeWaiters()
		if err := q.store.Close(); err != nil {
			q.closeErr = fmt.Errorf("close queue: %w", err)
		}
		q.report.close() // after the store: its last commits report too
		q.log.Info("queue closed")
	})
	return q.closeErr
}

// abortAttempts cancels every attempt in flight, and makes those that
// have not started yet end at once: attemptCx is done before the leases
// are walked, and an attempt that begins after its lease was passed over
// sees it (see lease.begin).
func (q *Queue) abortAttempts() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.abort()
	for _, l := range q.leases {
		l.abort()
	}
}

// isClosed reports whether Close has begun. It takes no lock, so it may be
// called inside a transaction.
func (q *Queue) isClosed() bool { return q.closed.Load() }

// Log attribute keys.
const (
	keyTaskID     = "task_id"
	keyAttempt    = "attempt"
	keyAttempts   = "attempts"
	keyRetval     = "retval"
	keyURL        = "url"
	keyMethod     = "method"
	keyOutcome    = "outcome"
	keyStatusCode = "status_code"
	keyDuration   = "duration"
	keyError      = "error"
	keyPath       = "path"
	keyWorkers    = "workers"
	keyDelay      = "delay"
	keyDeleted    = "deleted"
)
