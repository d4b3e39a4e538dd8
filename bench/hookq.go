package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/hookq/hookq/queue"
)

// hookqEmbedded is hookq as a library: the queue package in the bench
// process, with its default options.
type hookqEmbedded struct {
	e    *env
	q    *queue.Queue
	path string
	runs int

	// done counts the tasks whose outcome is on disk; all is closed when
	// it reaches want.
	done atomic.Int64
	want int64
	all  chan struct{}
}

func (h *hookqEmbedded) durability() string {
	return "fsync every commit (group commit)"
}

func (h *hookqEmbedded) start(_ context.Context, e *env) error {
	h.e = e
	return nil
}

func (h *hookqEmbedded) stop() error {
	if h.q == nil {
		return nil
	}
	err := h.q.Close()
	h.q = nil
	return err
}

func (h *hookqEmbedded) dirs() []string { return []string{h.e.dir} }

// open opens a queue over a new file with the default options, and the
// workers running or not.
func (h *hookqEmbedded) open(workers bool, onAttempt func(queue.AttemptEvent)) error {
	if err := h.stop(); err != nil {
		return err
	}
	if h.path != "" {
		if err := os.Remove(h.path); err != nil {
			return fmt.Errorf("remove old store: %w", err)
		}
	}
	h.runs++
	h.path = filepath.Join(h.e.dir, fmt.Sprintf("hookq-%d.db", h.runs))
	q, err := queue.Open(h.path, &queue.Options{DisableWorkers: !workers, OnAttempt: onAttempt})
	if err != nil {
		return err
	}
	h.q = q
	return nil
}

func (h *hookqEmbedded) reset(_ context.Context, workers bool) error {
	if !workers {
		return h.open(false, nil)
	}
	h.done.Store(0)
	h.all = make(chan struct{})
	return h.open(true, func(ev queue.AttemptEvent) {
		if ev.Final && h.done.Add(1) == h.want {
			close(h.all)
		}
	})
}

// spec returns the spec of task i.
func (h *hookqEmbedded) spec(i int) queue.Spec {
	x, y := operands(i)
	return queue.Spec{URL: h.e.url, Args: map[string]any{"x": x, "y": y}}
}

func (h *hookqEmbedded) enqueue(ctx context.Context, i int) error {
	_, err := h.q.Enqueue(ctx, h.spec(i))
	return err
}

func (h *hookqEmbedded) enqueueBatch(ctx context.Context, from, to int) error {
	specs := make([]queue.Spec, 0, to-from)
	for i := from; i < to; i++ {
		specs = append(specs, h.spec(i))
	}
	_, err := h.q.EnqueueMany(ctx, specs)
	return err
}

func (h *hookqEmbedded) run(ctx context.Context, n int) error {
	h.want = int64(n)
	for from := 0; from < n; from += batchSize {
		if err := h.enqueueBatch(ctx, from, min(from+batchSize, n)); err != nil {
			return err
		}
	}
	select {
	case <-h.all:
	case <-ctx.Done():
		return fmt.Errorf("%d of %d results stored: %w", h.done.Load(), n, ctx.Err())
	}
	st, err := h.q.Stats(ctx)
	if err != nil {
		return err
	}
	if got := st.Counts["succeeded"]; got != int64(n) {
		return fmt.Errorf("%d of %d tasks succeeded", got, n)
	}
	return nil
}

func (h *hookqEmbedded) latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error) {
	if err := h.open(true, nil); err != nil {
		return nil, err
	}
	return sequentialLatency(ctx, count, budget, func(ctx context.Context, i int) error {
		t, err := h.q.Enqueue(ctx, h.spec(i))
		if err != nil {
			return err
		}
		t, err = h.q.Wait(ctx, t.ID)
		if err != nil {
			return err
		}
		if t.State != queue.Succeeded {
			return fmt.Errorf("task %d ended %s", i, t.State)
		}
		return nil
	})
}

// probe closes the store the batch phase filled, reopens it and reads its
// stats and the first page of its listing, as `hookq ls` does.
func (h *hookqEmbedded) probe(ctx context.Context) (*Pending, error) {
	if err := h.stop(); err != nil {
		return nil, err
	}
	// Give back the producers' garbage, so that the resident set after
	// the reopen is the queue's.
	debug.FreeOSMemory()
	start := time.Now()
	q, err := queue.Open(h.path, &queue.Options{DisableWorkers: true})
	if err != nil {
		return nil, fmt.Errorf("reopen: %w", err)
	}
	h.q = q
	reopen := time.Since(start)

	start = time.Now()
	st, err := q.Stats(ctx)
	if err != nil {
		return nil, err
	}
	stats := time.Since(start)

	start = time.Now()
	if _, err := q.List(ctx, queue.ListOptions{Limit: 20}); err != nil {
		return nil, err
	}
	list := time.Since(start)
	return &Pending{Tasks: int(st.Total), ReopenMs: ms(reopen), StatsMs: ms(stats),
		ListMs: ms(list), RSSMB: float64(statusKB(os.Getpid(), "VmRSS")) / 1024,
		AnonMB: float64(statusKB(os.Getpid(), "RssAnon")) / 1024,
		FileMB: float64(statusKB(os.Getpid(), "RssFile")) / 1024}, nil
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
