package queue

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hookq/hookq/storage"
)

// storeFinished stores n tasks in state st, finished at fin, created at
// created, and returns them oldest first.
func storeFinished(t *testing.T, q *Queue, n int, st State, created, fin time.Time) []*Task {
	t.Helper()
	tasks := make([]*Task, n)
	err := q.store.Update(context.Background(), func(tx *storage.Tx) error {
		for i := range tasks {
			id, _ := q.ids.next(created)
			task := &Task{ID: id, URL: "http://h/", Method: "GET", Args: json.RawMessage(`{}`),
				State: st, CreatedAt: created, FinishedAt: ptr(fin), Attempts: 1,
				MaxAttempts: 1, Error: &Error{Kind: "http", Message: "boom"}}
			if _, _, err := tx.Insert(task); err != nil {
				return err
			}
			tasks[i] = task
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func TestQueue_RetryAll(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{DisableWorkers: true, Clock: clock})
	ctx := context.Background()

	// More failed tasks than one transaction changes, and others.
	const failed = 2500
	now := clock.Now()
	storeFinished(t, h.q, failed, Failed, now, now)
	kept := storeFinished(t, h.q, 3, Succeeded, now, now)
	pending := h.enqueue(t, Spec{URL: "http://h/p"})

	n, err := h.q.RetryAll(ctx, Failed)
	if err != nil || n != failed {
		t.Fatalf("RetryAll(failed) = %d, %v; want %d", n, err, failed)
	}
	stats, _ := h.q.Stats(ctx)
	if stats.Counts["failed"] != 0 || stats.Counts["pending"] != failed+1 ||
		stats.Counts["succeeded"] != 3 {
		t.Errorf("stats after RetryAll = %v", stats.Counts)
	}
	if got, _ := h.q.Get(ctx, kept[0].ID); got.State != Succeeded {
		t.Errorf("a succeeded task is %s", got.State)
	}
	if got, _ := h.q.Get(ctx, pending.ID); got.Rev != pending.Rev {
		t.Errorf("the pending task was rewritten")
	}
	checkStore(t, h.q)

	if _, err := h.q.RetryAll(ctx, Pending); !errors.Is(err, ErrNotFinal) {
		t.Errorf("RetryAll(pending) = %v; want ErrNotFinal", err)
	}
	if n, err := h.q.RetryAll(ctx, Failed); err != nil || n != 0 {
		t.Errorf("second RetryAll = %d, %v; want 0", n, err)
	}
}

func TestQueue_RetryAllSkipsHeldKeys(t *testing.T) {
	h := newHarness(t, &Options{DisableWorkers: true})
	ctx := context.Background()
	at := time.Now().Add(time.Hour)
	a := h.enqueue(t, Spec{URL: "http://h/a", Key: "k", RunAt: &at})
	b := h.enqueue(t, Spec{URL: "http://h/b", Key: "free", RunAt: &at})
	for _, id := range []ID{a.ID, b.ID} {
		if _, err := h.q.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	h.enqueue(t, Spec{URL: "http://h/c", Key: "k", RunAt: &at}) // takes a's key

	n, err := h.q.RetryAll(ctx, Cancelled)
	if err != nil || n != 1 {
		t.Fatalf("RetryAll(cancelled) = %d, %v; want 1", n, err)
	}
	if got, _ := h.q.Get(ctx, a.ID); got.State != Cancelled {
		t.Errorf("task whose key is held is %s; want cancelled", got.State)
	}
	if got, _ := h.q.Get(ctx, b.ID); got.State != Pending {
		t.Errorf("task with a free key is %s; want pending", got.State)
	}
	checkStore(t, h.q)
}

func TestQueue_CancelAll(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	h := newHarness(t, nil)
	ctx := context.Background()
	active := h.enqueue(t, Spec{URL: srv.URL})
	<-arrived
	at := time.Now().Add(time.Hour)
	var scheduled []*Task
	for range 3 {
		scheduled = append(scheduled, h.enqueue(t, Spec{URL: "http://127.0.0.1:1/", RunAt: &at}))
	}

	if _, err := h.q.CancelAll(ctx, Failed); !errors.Is(err, ErrFinal) {
		t.Errorf("CancelAll(failed) = %v; want ErrFinal", err)
	}
	n, err := h.q.CancelAll(ctx, Scheduled)
	if err != nil || n != 3 {
		t.Fatalf("CancelAll(scheduled) = %d, %v; want 3", n, err)
	}
	for _, s := range scheduled {
		if got, _ := h.q.Get(ctx, s.ID); got.State != Cancelled {
			t.Errorf("scheduled task is %s; want cancelled", got.State)
		}
	}
	if got, _ := h.q.Get(ctx, active.ID); got.State != Active {
		t.Errorf("in-flight task is %s after CancelAll(scheduled); want active", got.State)
	}

	// Active: the attempt in flight is aborted.
	n, err = h.q.CancelAll(ctx, Active)
	if err != nil || n != 1 {
		t.Fatalf("CancelAll(active) = %d, %v; want 1", n, err)
	}
	if got := h.wait(t, active.ID); got.State != Cancelled {
		t.Errorf("in-flight task is %s; want cancelled", got.State)
	}
	h.nextAttempt(t)
	checkStore(t, h.q)
}

func TestQueue_Purge(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{DisableWorkers: true, Clock: clock})
	ctx := context.Background()
	now := clock.Now()
	old := now.Add(-2 * time.Hour)
	oldFailed := storeFinished(t, h.q, 1500, Failed, old, old)
	oldDone := storeFinished(t, h.q, 2, Succeeded, old, old)
	recent := storeFinished(t, h.q, 2, Failed, old, now.Add(-time.Minute))

	if _, err := h.q.Purge(ctx, time.Hour, Pending); !errors.Is(err, ErrNotFinal) {
		t.Errorf("Purge(pending) = %v; want ErrNotFinal", err)
	}
	n, err := h.q.Purge(ctx, time.Hour, Failed)
	if err != nil || n != len(oldFailed) {
		t.Fatalf("Purge(1h, failed) = %d, %v; want %d", n, err, len(oldFailed))
	}
	for _, task := range append(oldDone, recent...) {
		if _, err := h.q.Get(ctx, task.ID); err != nil {
			t.Errorf("kept task: %v", err)
		}
	}
	if n, err := h.q.Purge(ctx, 0, 0); err != nil || n != 4 {
		t.Errorf("Purge(0, any) = %d, %v; want 4", n, err)
	}
	checkStore(t, h.q)
}

func TestQueue_ListURL(t *testing.T) {
	h := newHarness(t, &Options{DisableWorkers: true})
	ctx := context.Background()
	at := time.Now().Add(time.Hour)
	secret := h.enqueue(t, Spec{URL: "http://user:s3cret@a.example/hook", RunAt: &at})
	h.enqueue(t, Spec{URL: "http://b.example/hook", RunAt: &at})

	tests := []struct {
		url   string
		state State
		want  int
	}{
		{"a.example", 0, 1},
		{"/hook", 0, 2},
		{"s3cret", 0, 0}, // userinfo is matched as shown: xxxxx
		{"xxxxx@a.example", Scheduled, 1},
		{"b.example", Failed, 0},
	}
	for _, tt := range tests {
		got, err := h.q.List(ctx, ListOptions{URL: tt.url, State: tt.state})
		if err != nil || len(got) != tt.want {
			t.Errorf("List(url %q, state %v) = %d tasks, %v; want %d", tt.url, tt.state,
				len(got), err, tt.want)
		}
	}
	if got, _ := h.q.List(ctx, ListOptions{URL: "a.example"}); len(got) == 1 &&
		got[0].ID != secret.ID {
		t.Errorf("List(a.example) = %s; want %s", got[0].ID, secret.ID)
	}
}

func TestSpec_Validate(t *testing.T) {
	if err := (&Spec{URL: "http://h/"}).Validate(); err != nil {
		t.Errorf("Validate of a good spec = %v", err)
	}
	if err := (&Spec{URL: "ftp://h/"}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("Validate of ftp = %v; want ErrInvalid", err)
	}
}

func TestQueue_StatsNextRunWithDueTasks(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{DisableWorkers: true, Clock: clock})
	at := clock.Now().Add(time.Hour)
	h.enqueue(t, Spec{URL: "http://h/now"})
	h.enqueue(t, Spec{URL: "http://h/later", RunAt: &at})
	s, err := h.q.Stats(context.Background())
	if err != nil || s.NextRun == nil || !s.NextRun.Equal(at) || s.OldestPending == nil {
		t.Errorf("Stats = %+v, %v; want next run %s and an oldest pending", s, err, at)
	}
}
