package queue

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hookq/hookq/storage"
)

func TestQueue_Sweep(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{DisableWorkers: true, Clock: clock, Retention: time.Hour})
	ctx := context.Background()

	// 2,500 finished tasks (more than one sweep transaction holds), one
	// still pending, and one finished recently, all created an hour ago.
	old := clock.Now()
	const finished = 2500
	err := h.q.store.Update(ctx, func(tx *storage.Tx) error {
		for i := range finished {
			id, _ := h.q.ids.next(old)
			key := "k" + id.String()
			task := &Task{ID: id, URL: "http://h/", Method: "GET", Args: json.RawMessage(`{}`),
				State: Succeeded, CreatedAt: old, FinishedAt: ptr(old.Add(time.Minute)),
				Attempts: 1, Result: json.RawMessage(`1`)}
			if i == 0 {
				task.Key = &key
			}
			if _, _, err := tx.Insert(task); err != nil {
				return err
			}
			if err := tx.AddAttempt(id, &Attempt{N: 1, StartedAt: old, Outcome: "succeeded"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pending := h.enqueue(t, Spec{URL: "http://h/p"})
	recent := h.enqueue(t, Spec{URL: "http://h/r"})

	clock.Advance(90 * time.Minute)
	if _, err := h.q.Cancel(ctx, recent.ID); err != nil {
		t.Fatal(err)
	}
	n, err := h.q.Sweep(ctx)
	if err != nil || n != finished {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, finished)
	}
	for _, id := range []ID{pending.ID, recent.ID} {
		if _, err := h.q.Get(ctx, id); err != nil {
			t.Errorf("kept task %s: %v", id, err)
		}
	}
	stats, _ := h.q.Stats(ctx)
	if stats.Total != 2 || stats.Counts["succeeded"] != 0 {
		t.Errorf("stats after sweep = %+v", stats)
	}
	checkStore(t, h.q)

	// A second sweep finds nothing; the recent one goes an hour later.
	if n, _ := h.q.Sweep(ctx); n != 0 {
		t.Errorf("second Sweep deleted %d", n)
	}
	clock.Advance(time.Hour + time.Second)
	if n, _ := h.q.Sweep(ctx); n != 1 {
		t.Errorf("Sweep after another hour deleted %d; want 1", n)
	}
	if _, err := h.q.Get(ctx, recent.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get swept task = %v; want ErrNotFound", err)
	}
	checkStore(t, h.q)
}

func TestQueue_SweepRunsInTheBackground(t *testing.T) {
	srv := receiver(t, multiply)
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{Clock: clock, Retention: time.Minute})
	task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 1, "y": 1}})
	h.wait(t, task.ID)

	// The sweeper sweeps at once, then sleeps a tenth of the retention
	// on the clock (the only timer of an idle queue): each time it sleeps,
	// move the clock past its timer, until a sweep has taken the task.
	for deleted := 0; deleted == 0; {
		clock.waitForTimer(t)
		clock.Advance(10 * time.Second)
		select {
		case deleted = <-h.sweeps:
		case <-time.After(10 * time.Second):
			t.Fatal("no sweep within 10s of its time")
		}
	}
	if _, err := h.q.Get(context.Background(), task.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after the sweep = %v; want ErrNotFound", err)
	}
}
