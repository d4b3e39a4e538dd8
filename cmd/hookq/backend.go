package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/queue"
)

// taskAPI is what the commands need of a queue. A running server's
// *httpapi.Client and a directly opened *queue.Queue both provide it, with
// the same types and errors, so a command's output does not depend on
// which one it got.
type taskAPI interface {
	Enqueue(ctx context.Context, spec queue.Spec) (*queue.Task, error)
	EnqueueMany(ctx context.Context, specs []queue.Spec) ([]*queue.Task, error)
	Get(ctx context.Context, id queue.ID) (*queue.Task, error)
	Attempts(ctx context.Context, id queue.ID) ([]queue.Attempt, error)
	List(ctx context.Context, opts queue.ListOptions) ([]*queue.Task, error)
	Retry(ctx context.Context, id queue.ID) (*queue.Task, error)
	Cancel(ctx context.Context, id queue.ID) (*queue.Task, error)
	RetryAll(ctx context.Context, st queue.State) (int, error)
	CancelAll(ctx context.Context, st queue.State) (int, error)
	Purge(ctx context.Context, olderThan time.Duration, st queue.State) (int, error)
	Stats(ctx context.Context) (*queue.Stats, error)
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}

// The directly opened queue must provide the API the commands use.
var _ taskAPI = (*queue.Queue)(nil)

// access says what a command does to the store.
type access int

const (
	readAccess  access = iota // inspect only: the store is opened read-only
	writeAccess               // enqueue, retry, cancel: opened without workers
)

// Lock timeouts of a direct open. A running server answers on its socket,
// so a direct open waits only for other commands, which hold the lock for
// milliseconds each, and for a server that is starting or stopping. Writes
// wait longer so that a burst of "hookq add" from scripts queues up rather
// than fails.
const (
	readLockTimeout  = time.Second
	writeLockTimeout = 5 * time.Second
	dialTimeout      = time.Second
)

// connect returns the running server's client, or else the store opened
// directly for acc. The caller closes what it gets.
func (a *app) connect(acc access, stderr io.Writer) (taskAPI, error) {
	if c := a.dialServer(); c != nil {
		return c, nil
	}
	q, err := a.openStore(acc, stderr, 0)
	if errors.Is(err, queue.ErrLocked) {
		// A server may have started meanwhile: it listens on its socket
		// before it takes the lock.
		if c := a.dialServer(); c != nil {
			return c, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// dialServer returns a client of the server listening on the data
// directory's socket, or nil if none answers there. A socket file left by
// a killed server refuses connections, so it counts as none.
func (a *app) dialServer() *serverClient {
	if !socketAnswers(a.socketPath()) {
		return nil
	}
	return &serverClient{c: httpapi.NewUnixClient(a.socketPath()), socket: a.socketPath()}
}

// socketAnswers reports whether a process accepts connections on the unix
// socket at path.
func socketAnswers(path string) bool {
	conn, err := net.DialTimeout("unix", path, dialTimeout)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// openStore opens the store directly: read-only for readAccess (and then
// only if it exists), without workers for writeAccess. Zero lockTimeout
// means the default for acc. Problems of the queue itself are logged to
// stderr at Warn.
func (a *app) openStore(acc access, stderr io.Writer,
	lockTimeout time.Duration) (*queue.Queue, error) {
	path := a.storePath()
	opts := &queue.Options{
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if acc == readAccess {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, &causeError{
				msg: fmt.Sprintf("no queue in %s yet (%s does not exist): "+
					`start one with "hookq serve" or add a task with "hookq add"`, a.dataDir(), path),
				cause: err,
			}
		}
		opts.ReadOnly = true
		opts.LockTimeout = readLockTimeout
	} else {
		opts.DisableWorkers = true
		opts.LockTimeout = writeLockTimeout
		// Opening for writing walks every page, and a damaged one crashes
		// the process from a goroutine of bbolt's: probe it in a child.
		if err := a.probeStore(context.Background()); err != nil {
			return nil, err
		}
	}
	if lockTimeout > 0 {
		opts.LockTimeout = lockTimeout
	}

	q, err := queue.Open(path, opts)
	if errors.Is(err, queue.ErrLocked) {
		return nil, &causeError{
			msg: fmt.Sprintf("the store %s is busy: a server is starting or stopping, "+
				"or another hookq command is using it; try again", path),
			cause: err,
		}
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// taskErr returns err, the failure of an operation on the task id, with
// the message "task ID not found" when no task has that ID, whichever
// operation looked it up.
func taskErr(id queue.ID, err error) error {
	if errors.Is(err, queue.ErrNotFound) {
		return &causeError{msg: fmt.Sprintf("task %s not found", id), cause: err}
	}
	return err
}

// parseID parses a task ID given on the command line.
func parseID(s string) (queue.ID, error) {
	id, err := queue.ParseID(s)
	if err != nil {
		return id, usagef("%q is not a task ID (IDs are 26-character ULIDs)", s)
	}
	return id, nil
}
