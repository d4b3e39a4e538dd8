// Package hookqtest helps test code that enqueues hookq tasks, without a
// network. Open gives a test a queue in its temporary directory whose tasks
// are delivered to an http.Handler in the same process; WaitFinal waits
// until every task has finished, and Tasks lists what was enqueued:
//
//	func TestSignup(t *testing.T) {
//		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			fmt.Fprint(w, `{"status":"success","retval":"ok"}`)
//		})
//		q := hookqtest.Open(t, h, nil)
//
//		signup(t.Context(), q, "ada@example.com") // the code under test
//
//		tasks, err := hookqtest.WaitFinal(t.Context(), q)
//		if err != nil {
//			t.Fatal(err)
//		}
//		if len(tasks) != 1 || tasks[0].State != queue.Succeeded {
//			t.Errorf("tasks = %v; want one succeeded", tasks)
//		}
//	}
//
// Only the network is left out: the queue, its store, and dispatch's
// request building, deadline, redirects, body limits and reading of the
// reply are those of production, so a task behaves as it would against a
// real endpoint. The dispatch guard is not applied, since no address is
// dialled. For a queue opened otherwise (with queue.OpenDB, say), set
// Transport as its dispatch.Options.Transport.
package hookqtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hookq/hookq/queue"
)

// Defaults Open sets where opts leaves a field at zero, so that tests run
// fast: retries come within milliseconds, and Close does not wait long for
// a handler that hangs.
const (
	// BackoffBase is Open's default for queue.Options.BackoffBase.
	BackoffBase = 10 * time.Millisecond
	// BackoffCap is Open's default for queue.Options.BackoffCap, which
	// also caps a Retry-After the handler asks for.
	BackoffCap = 100 * time.Millisecond
	// Grace is Open's default for queue.Options.Grace.
	Grace = time.Second
)

// Open opens a queue in a file of t.TempDir() whose tasks are all
// delivered to h in process (see Transport), and closes it when the test
// and its subtests end. opts may be nil; Open does not modify it. Fields
// left at zero get the queue's defaults, but for BackoffBase, BackoffCap
// and Grace, which get this package's, and NoSync, which is set: a test's
// store needs no fsync. opts.Dispatch.Transport is replaced by h.
func Open(t testing.TB, h http.Handler, opts *queue.Options) *queue.Queue {
	t.Helper()
	if h == nil {
		t.Fatal("hookqtest.Open: nil handler")
	}
	var o queue.Options
	if opts != nil {
		o = *opts
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = BackoffBase
	}
	if o.BackoffCap == 0 {
		o.BackoffCap = BackoffCap
	}
	if o.Grace == 0 {
		o.Grace = Grace
	}
	o.NoSync = true
	o.Dispatch.Transport = Transport(h)

	q, err := queue.Open(filepath.Join(t.TempDir(), "hookq.db"), &o)
	if err != nil {
		t.Fatalf("hookqtest.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("hookqtest: close queue: %v", err)
		}
	})
	return q
}

// WaitFinal waits until every task of q is final (succeeded, failed or
// cancelled), tasks enqueued while it waits included, and returns them all,
// oldest first. It is woken by each completion, never by polling. A task
// scheduled for later is waited for until it runs, so give such a test a
// deadline through ctx. It fails when ctx is done, when q closes, or when
// q dispatches nothing (queue.ErrNoWorkers) and a task is not final.
func WaitFinal(ctx context.Context, q *queue.Queue) ([]*queue.Task, error) {
	for {
		tasks, err := Tasks(ctx, q)
		if err != nil {
			return nil, err
		}
		waited := false
		for _, t := range tasks {
			if t.State.Final() {
				continue
			}
			waited = true
			if _, err := q.Wait(ctx, t.ID); err != nil && !errors.Is(err, queue.ErrNotFound) {
				return nil, fmt.Errorf("wait final: %w", err)
			}
		}
		// A round that waited lists again, for tasks enqueued meanwhile;
		// a round that found every task final is the answer.
		if !waited {
			return tasks, nil
		}
	}
}

// Tasks returns every task of q, oldest first, in the state a reader sees
// it (as queue.Queue.List does).
func Tasks(ctx context.Context, q *queue.Queue) ([]*queue.Task, error) {
	var all []*queue.Task
	var before *queue.ID
	for {
		page, err := q.List(ctx, queue.ListOptions{Limit: queue.MaxListLimit, Before: before})
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		all = append(all, page...)
		if len(page) < queue.MaxListLimit {
			break
		}
		before = &page[len(page)-1].ID
	}
	slices.Reverse(all)
	return all, nil
}
