package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/queue"
)

// Timings of waiting for a task.
const (
	// pollInterval is how often a wait without a server looks for one and
	// reads the task from the store.
	pollInterval = 200 * time.Millisecond
	// longPoll is the length of one long poll to a server.
	longPoll = 30 * time.Second
	// pollLockTimeout bounds a read of the store between polls: if the
	// store is locked a server is starting, and its socket will tell.
	pollLockTimeout = 100 * time.Millisecond
	// maxServerFailures is how many requests in a row may fail on a server
	// that accepts connections before the wait gives up.
	maxServerFailures = 25
)

// newWaitCmd returns "hookq wait".
func newWaitCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Block until a task is final and print its result",
		Long: `Wait blocks until the task is final. If it succeeded, wait prints its result
as JSON on stdout and exits 0; if it failed or was cancelled, it prints why on
stderr and exits 1. It also exits 1 when --timeout passes first.

Wait works with or without a running server: without one it waits for a
server to start, never holding the store while it waits.`,
		Example: `  hookq wait 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq wait --timeout 30s 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A && echo done`,
		Args:              oneTaskID,
		ValidArgsFunction: a.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			if timeout < 0 {
				return usagef("--timeout %s is negative", timeout)
			}
			t, err := a.await(cmd.Context(), id, timeout, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return printOutcome(cmd.OutOrStdout(), t)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait forever)")
	return cmd
}

// printOutcome prints a final task's result as JSON, or returns an error
// saying why it did not succeed.
func printOutcome(w io.Writer, t *queue.Task) error {
	switch t.State {
	case queue.Succeeded:
		_, err := fmt.Fprintln(w, compactJSON(t.Result))
		return err
	case queue.Cancelled:
		return fmt.Errorf("task %s was cancelled", t.ID)
	default:
		return fmt.Errorf("task %s failed after %s: %s", t.ID, plural(t.Attempts, "attempt"),
			errorText(t.Error))
	}
}

// await blocks until the task is final and returns it. With a server it
// long-polls it; without one it looks for a server's socket and reads the
// store briefly every pollInterval, so that a server can start meanwhile.
// Zero timeout means no limit.
func (a *app) await(ctx context.Context, id queue.ID, timeout time.Duration,
	stderr io.Writer) (*queue.Task, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var last *queue.Task // the task as last seen, for the timeout message
	failures := 0
	told := false
	for {
		t, err := a.pollOnce(ctx, id, stderr)
		if t != nil {
			last = t
		}
		switch {
		case err == nil && t.State.Final():
			return t, nil
		case err == nil:
			// The server's long poll ended with the task still running.
			failures = 0
			continue
		case ctx.Err() != nil:
			return nil, a.waitEnded(ctx, id, timeout, last, stderr)
		case errors.Is(err, errNoServer):
			if !told {
				fmt.Fprintf(stderr, "hookq: no server is running on %s; waiting for one to start\n",
					a.dataDir())
				told = true
			}
		case retryable(err) && failures < maxServerFailures:
			failures++
		default:
			return nil, taskErr(id, err)
		}

		timer := time.NewTimer(pollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, a.waitEnded(ctx, id, timeout, last, stderr)
		case <-timer.C:
		}
	}
}

// errNoServer reports, within await, a poll that found no server and the
// task not final in the store.
var errNoServer = errors.New("no server")

// pollOnce asks a server for the task with a long poll or, with no server,
// reads it from the store. It returns the task, final or not; errNoServer
// with the task when it came from the store and is not final.
func (a *app) pollOnce(ctx context.Context, id queue.ID, stderr io.Writer) (*queue.Task, error) {
	if c := a.dialServer(); c != nil {
		defer c.Close()
		return c.Poll(ctx, id, longPoll)
	}

	// No server: read the store and let go of it at once.
	q, err := a.openStore(readAccess, stderr, pollLockTimeout)
	if errors.Is(err, queue.ErrLocked) {
		return nil, errNoServer // a server starting, or a command: poll again
	}
	if err != nil {
		return nil, err
	}
	t, err := q.Get(ctx, id)
	q.Close()
	if err != nil {
		return nil, err
	}
	if !t.State.Final() {
		return t, errNoServer
	}
	return t, nil
}

// retryable reports whether a poll of a server failed for a reason that
// may pass: the server went away or is shutting down. A server that took
// the poll but did not answer it in time (errNoAnswer) is not polled again.
func retryable(err error) bool {
	var apiErr *httpapi.Error
	if errors.As(err, &apiErr) {
		return errors.Is(err, queue.ErrClosed)
	}
	var transportErr *url.Error
	return errors.As(err, &transportErr)
}

// waitEnded returns the error of a wait whose context ended first. A
// timeout names the task's state, looked up once more if no poll saw it.
func (a *app) waitEnded(ctx context.Context, id queue.ID, timeout time.Duration,
	last *queue.Task, stderr io.Writer) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("wait for %s: interrupted", id)
	}
	state := "unknown"
	if last == nil {
		last = a.peek(id, stderr)
	}
	if last != nil {
		state = last.State.String()
	}
	return fmt.Errorf("timed out after %s waiting for task %s (it is %s)", timeout, id, state)
}

// peek returns the task as it is now, or nil if it cannot be read quickly.
func (a *app) peek(id queue.ID, stderr io.Writer) *queue.Task {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c := a.dialServer(); c != nil {
		defer c.Close()
		t, _ := c.Get(ctx, id)
		return t
	}
	q, err := a.openStore(readAccess, stderr, pollLockTimeout)
	if err != nil {
		return nil
	}
	defer q.Close()
	t, _ := q.Get(ctx, id)
	return t
}
