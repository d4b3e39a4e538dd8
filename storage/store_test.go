package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hookq/hookq/internal/cputime"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hookq.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTask(i int) *Task {
	at := testNow.Add(time.Duration(i) * time.Second)
	return &Task{
		ID:            ulid.MustNew(ulid.Timestamp(testNow), ulid.DefaultEntropy()),
		URL:           fmt.Sprintf("http://127.0.0.1/multiply/%d", i),
		Method:        "GET",
		Args:          json.RawMessage(`{"x":10,"y":10}`),
		Protocol:      "celery",
		MaxAttempts:   10,
		Timeout:       Duration(15 * time.Second),
		State:         Pending,
		CreatedAt:     testNow,
		NextAttemptAt: &at,
	}
}

func insert(t *testing.T, s *Store, tasks ...*Task) {
	t.Helper()
	err := s.Update(context.Background(), func(tx *Tx) error {
		for _, task := range tasks {
			if _, _, err := tx.Insert(task); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
}

func get(t *testing.T, s *Store, id ID) *Task {
	t.Helper()
	var got *Task
	if err := s.View(func(tx *Tx) error {
		var err error
		got, err = tx.Get(id)
		return err
	}); err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return got
}

// checkInvariants fails the test if the store's indexes or counters
// disagree with its records.
func checkInvariants(t *testing.T, s *Store) {
	t.Helper()
	for _, p := range s.Check() {
		t.Errorf("check: %v", p)
	}
}

func TestRecord_RoundTrip(t *testing.T) {
	key := "order-7"
	fin := testNow.Add(time.Minute)
	tasks := map[string]*Task{
		"Minimal": {ID: ulid.Make(), URL: "http://h/", Method: "GET", State: Pending,
			CreatedAt: testNow, NextAttemptAt: &testNow},
		"Full": {
			ID: ulid.Make(), URL: "https://u:p@h/x?q=1", Method: "POST",
			Args:    json.RawMessage(`{"a":["1",2,true]}`),
			Headers: map[string]string{"X-Trace": "abc"}, JSON: json.RawMessage(`{"k":null}`),
			Protocol: "plain", MaxAttempts: 3, Timeout: Duration(2 * time.Second),
			RunAt: &testNow, Key: &key, State: Failed, Attempts: 3, CreatedAt: testNow,
			FinishedAt: &fin, Result: json.RawMessage(`null`),
			Error: &Error{Kind: "http", Message: "boom", StatusCode: 500},
			Rev:   7, AttemptBase: 2, RetriedAt: &fin,
		},
	}
	for name, want := range tasks {
		t.Run(name, func(t *testing.T) {
			rec, err := encodeTask(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeTask(want.ID, rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if s, err := decodeState(rec); err != nil || s != want.State {
				t.Errorf("decodeState = %v, %v; want %v", s, err, want.State)
			}
			if r, err := decodeRev(rec); err != nil || r != want.Rev {
				t.Errorf("decodeRev = %v, %v; want %v", r, err, want.Rev)
			}
		})
	}
}

func TestRecord_UnknownFieldsSkipped(t *testing.T) {
	want := newTask(0)
	rec, err := encodeTask(want)
	if err != nil {
		t.Fatal(err)
	}
	// A field from a later version, with a tag this one does not know.
	e := encoder{b: rec}
	e.str(999, "from the future")
	got, err := decodeTask(want.ID, e.b)
	if err != nil {
		t.Fatalf("decode with unknown field: %v", err)
	}
	if got.URL != want.URL || got.State != want.State {
		t.Errorf("got %+v", got)
	}
}

func TestRecord_CorruptRejected(t *testing.T) {
	rec, err := encodeTask(newTask(0))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"Empty":          nil,
		"BadVersion":     append([]byte{9}, rec[1:]...),
		"Truncated":      rec[:len(rec)-3],
		"LengthOverflow": {recordVersion, tagURL, 0xff, 0xff, 0x03, 'a'},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeTask(ID{}, b); !errors.Is(err, errCorrupt) {
				t.Errorf("decode = %v; want errCorrupt", err)
			}
		})
	}
}

func TestTx_Rev(t *testing.T) {
	s, _ := openTest(t)
	task := newTask(0)
	insert(t, s, task)
	rev := func() (uint32, error) {
		var rev uint32
		err := s.View(func(tx *Tx) error {
			var err error
			rev, err = tx.Rev(task.ID)
			return err
		})
		return rev, err
	}
	if got, err := rev(); err != nil || got != 0 {
		t.Errorf("Rev of a new task = %d, %v; want 0", got, err)
	}

	// Replace with the copy read before: Rev says it is still current.
	err := s.Update(context.Background(), func(tx *Tx) error {
		if got, err := tx.Rev(task.ID); err != nil || got != task.Rev {
			return fmt.Errorf("Rev = %d, %v; want %d", got, err, task.Rev)
		}
		next := task.Clone()
		next.State, next.NextAttemptAt, next.FinishedAt = Succeeded, nil, &testNow
		return tx.Replace(task, next)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rev(); err != nil || got != 1 {
		t.Errorf("Rev after Replace = %d, %v; want 1", got, err)
	}
	checkInvariants(t, s)

	err = s.View(func(tx *Tx) error { _, err := tx.Rev(ulid.Make()); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Rev of an unknown task = %v; want ErrNotFound", err)
	}
}

func TestStore_InsertGet(t *testing.T) {
	s, _ := openTest(t)
	want := newTask(1)
	insert(t, s, want)
	got := get(t, s, want.ID)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	checkInvariants(t, s)

	err := s.View(func(tx *Tx) error { _, err := tx.Get(ulid.Make()); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown = %v; want ErrNotFound", err)
	}
}

func TestStore_StateChangesKeepIndexes(t *testing.T) {
	s, _ := openTest(t)
	tasks := []*Task{newTask(0), newTask(1), newTask(2)}
	insert(t, s, tasks...)
	checkInvariants(t, s)

	// Walk task 0 through retrying → succeeded, task 1 to cancelled and
	// back to pending, and delete task 2; check after every step.
	steps := []struct {
		name string
		id   ID
		edit func(*Task)
	}{
		{"Retrying", tasks[0].ID, func(t *Task) {
			t.State, t.Attempts = Retrying, 1
			t.NextAttemptAt = ptrTime(testNow.Add(time.Hour))
		}},
		{"Succeeded", tasks[0].ID, func(t *Task) {
			t.State, t.Attempts, t.NextAttemptAt = Succeeded, 2, nil
			t.Result, t.FinishedAt = json.RawMessage(`100`), ptrTime(testNow)
		}},
		{"Cancelled", tasks[1].ID, func(t *Task) {
			t.State, t.NextAttemptAt = Cancelled, nil
		}},
		{"RetriedByUser", tasks[1].ID, func(t *Task) {
			t.State, t.NextAttemptAt = Pending, ptrTime(testNow)
		}},
	}
	for _, step := range steps {
		err := s.Update(context.Background(), func(tx *Tx) error {
			cur, err := tx.Get(step.id)
			if err != nil {
				return err
			}
			next := cur.Clone()
			step.edit(next)
			return tx.Replace(cur, next)
		})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		checkInvariants(t, s)
	}
	err := s.Update(context.Background(), func(tx *Tx) error {
		if err := tx.AddAttempt(tasks[2].ID, &Attempt{N: 1, StartedAt: testNow}); err != nil {
			return err
		}
		return tx.Delete(tasks[2])
	})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, s)

	var counts map[State]int64
	s.View(func(tx *Tx) error { counts = tx.Counts(); return nil })
	want := map[State]int64{Scheduled: 0, Pending: 1, Retrying: 0, Succeeded: 1, Failed: 0, Cancelled: 0}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("counts = %v; want %v", counts, want)
	}
	if got := get(t, s, tasks[0].ID); got.Rev != 2 || string(got.Result) != "100" {
		t.Errorf("task 0 = rev %d result %s; want rev 2 result 100", got.Rev, got.Result)
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

func TestStore_IdempotencyKey(t *testing.T) {
	s, _ := openTest(t)
	key := "k1"
	a, b := newTask(0), newTask(1)
	a.Key, b.Key = &key, &key
	insert(t, s, a)

	var dup bool
	var prev *Task
	s.Update(context.Background(), func(tx *Tx) error {
		var err error
		prev, dup, err = tx.Insert(b)
		return err
	})
	if !dup || prev.ID != a.ID {
		t.Fatalf("second insert: dup=%v prev=%v; want the first task", dup, prev)
	}

	// Cancelling releases the key, so the same key makes a new task.
	s.Update(context.Background(), func(tx *Tx) error {
		cur, _ := tx.Get(a.ID)
		next := cur.Clone()
		next.State, next.NextAttemptAt = Cancelled, nil
		return tx.Replace(cur, next)
	})
	s.Update(context.Background(), func(tx *Tx) error {
		var err error
		prev, dup, err = tx.Insert(b)
		return err
	})
	if dup {
		t.Fatalf("insert after cancel returned %s; want a new task", prev.ID)
	}
	checkInvariants(t, s)
}

func TestStore_Due(t *testing.T) {
	s, _ := openTest(t)
	var tasks []*Task
	for i := range 5 {
		tasks = append(tasks, newTask(i)) // due at testNow + i s
	}
	insert(t, s, tasks...)

	var due []*Task
	var next *time.Time
	s.View(func(tx *Tx) error {
		var err error
		due, next, err = tx.Due(testNow.Add(2*time.Second), DueOptions{Max: 10,
			Skip: func(id ID) bool { return id == tasks[1].ID }}) // leased
		return err
	})
	if len(due) != 2 || due[0].ID != tasks[0].ID || due[1].ID != tasks[2].ID {
		t.Errorf("due = %v; want tasks 0 and 2", due)
	}
	if next == nil || !next.Equal(testNow.Add(3*time.Second)) {
		t.Errorf("next = %v; want %v", next, testNow.Add(3*time.Second))
	}

	s.View(func(tx *Tx) error {
		due, next, _ = tx.Due(testNow.Add(time.Hour), DueOptions{Max: 2})
		return nil
	})
	if len(due) != 2 || next != nil {
		t.Errorf("capped Due = %d tasks, next %v; want 2, nil", len(due), next)
	}

	// Accept passes over tasks once read; MaxScan stops a long pass.
	s.View(func(tx *Tx) error {
		due, next, _ = tx.Due(testNow.Add(time.Hour), DueOptions{Max: 5,
			Accept: func(t *Task) bool { return t.ID != tasks[0].ID }})
		return nil
	})
	if len(due) != 4 || due[0].ID != tasks[1].ID {
		t.Errorf("Due with Accept = %d tasks; want 4 starting at task 1", len(due))
	}
	s.View(func(tx *Tx) error {
		due, next, _ = tx.Due(testNow.Add(time.Hour), DueOptions{Max: 5, MaxScan: 2,
			Skip: func(id ID) bool { return id == tasks[0].ID }})
		return nil
	})
	if len(due) != 1 || next != nil {
		t.Errorf("Due with MaxScan 2 = %d tasks, next %v; want 1, nil", len(due), next)
	}
}

func TestStore_ListNewestFirst(t *testing.T) {
	s, _ := openTest(t)
	var tasks []*Task
	for i := range 7 {
		task := newTask(i)
		if i%2 == 1 {
			task.State, task.NextAttemptAt = Failed, nil
		}
		tasks = append(tasks, task)
	}
	insert(t, s, tasks...)

	list := func(opts ListOptions) []ID {
		var out []*Task
		if err := s.View(func(tx *Tx) error {
			var err error
			out, err = tx.List(opts)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ids := make([]ID, len(out))
		for i, task := range out {
			ids[i] = task.ID
		}
		return ids
	}
	ids := func(idx ...int) []ID {
		out := make([]ID, len(idx))
		for i, j := range idx {
			out[i] = tasks[j].ID
		}
		return out
	}

	if got, want := list(ListOptions{Limit: 3}), ids(6, 5, 4); !reflect.DeepEqual(got, want) {
		t.Errorf("first page = %v; want %v", got, want)
	}
	if got, want := list(ListOptions{Limit: 3, Before: &tasks[4].ID}), ids(3, 2, 1); !reflect.DeepEqual(got, want) {
		t.Errorf("second page = %v; want %v", got, want)
	}
	if got, want := list(ListOptions{States: []State{Failed}}), ids(5, 3, 1); !reflect.DeepEqual(got, want) {
		t.Errorf("failed = %v; want %v", got, want)
	}
}

func TestStore_GroupCommitConcurrent(t *testing.T) {
	s, _ := openTest(t)
	const writers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				task := newTask(w*each + i)
				task.ID = ulid.Make()
				err := s.Update(context.Background(), func(tx *Tx) error {
					_, _, err := tx.Insert(task)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int64
	s.View(func(tx *Tx) error { n = tx.Counts()[Pending]; return nil })
	if n != writers*each {
		t.Errorf("pending = %d; want %d", n, writers*each)
	}
	checkInvariants(t, s)
}

func TestStore_FailedUpdateRollsBackAlone(t *testing.T) {
	s, _ := openTest(t)
	good, bad := newTask(0), newTask(1)
	boom := errors.New("boom")

	// Submit both at once so they are likely to share a batch; whatever
	// the batching, the failing update must leave nothing behind.
	var wg sync.WaitGroup
	var goodErr, badErr error
	wg.Go(func() {
		badErr = s.Update(context.Background(), func(tx *Tx) error {
			if _, _, err := tx.Insert(bad); err != nil {
				return err
			}
			return boom // after writing
		})
	})
	wg.Go(func() {
		goodErr = s.Update(context.Background(), func(tx *Tx) error {
			_, _, err := tx.Insert(good)
			return err
		})
	})
	wg.Wait()
	if goodErr != nil || !errors.Is(badErr, boom) {
		t.Fatalf("errors = %v, %v; want nil, boom", goodErr, badErr)
	}
	err := s.View(func(tx *Tx) error { _, err := tx.Get(bad.ID); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("failed update left its task behind: %v", err)
	}
	get(t, s, good.ID)
	checkInvariants(t, s)
}

func TestStore_PanicInUpdate(t *testing.T) {
	s, _ := openTest(t)
	err := s.Update(context.Background(), func(tx *Tx) error { panic("bug") })
	if err == nil {
		t.Fatal("panicking update returned nil")
	}
	insert(t, s, newTask(0)) // the committer still runs
}

func TestStore_ReopenAndLocks(t *testing.T) {
	s, path := openTest(t)
	task := newTask(0)
	insert(t, s, task)

	// A second writer cannot open the file while the first holds it.
	start := time.Now()
	_, err := Open(path, &Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v; want ErrLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("second Open took %v", time.Since(start))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Update(context.Background(), func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v; want ErrClosed", err)
	}

	// Read-only opens share the file and refuse writes.
	r1, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got := get(t, r2, task.ID); got.URL != task.URL {
		t.Errorf("read back %q", got.URL)
	}
	if err := r1.Update(context.Background(), func(*Tx) error { return nil }); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Update on read-only = %v; want ErrReadOnly", err)
	}
}

func TestStore_ReadOnlyMissingFile(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "none.db"), &Options{ReadOnly: true})
	if err == nil {
		t.Fatal("read-only Open of a missing file succeeded")
	}
}

func BenchmarkEncodeTask(b *testing.B) {
	task := newTask(0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeTask(task); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTask(b *testing.B) {
	task := newTask(0)
	rec, _ := encodeTask(task)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeTask(task.ID, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStore_Complete measures the commit path of finished attempts:
// 128 concurrent writers each check that a task is as they read it
// before, add its attempt and store it succeeded, sharing commits.
func BenchmarkStore_Complete(b *testing.B) { benchComplete(b, false) }

// BenchmarkStore_CompleteTallied is BenchmarkStore_Complete with each
// completion counted in the per-second tallies, as the queue does.
func BenchmarkStore_CompleteTallied(b *testing.B) { benchComplete(b, true) }

// benchComplete stores b.N completions from 128 concurrent writers.
func benchComplete(b *testing.B, tally bool) {
	s, err := Open(filepath.Join(b.TempDir(), "hookq.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tasks := make([]*Task, b.N)
	for i := range tasks {
		tasks[i] = newTask(i)
	}
	for i := 0; i < len(tasks); i += 1000 {
		err := s.Update(context.Background(), func(tx *Tx) error {
			for _, task := range tasks[i:min(i+1000, len(tasks))] {
				if _, _, err := tx.Insert(task); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	for range 128 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(tasks)) {
					return
				}
				err := s.Update(context.Background(), func(tx *Tx) error {
					// The task as read when it was leased, still current.
					cur := tasks[i]
					if rev, err := tx.Rev(cur.ID); err != nil || rev != cur.Rev {
						return fmt.Errorf("rev of %s = %d, %v; want %d", cur.ID, rev, err, cur.Rev)
					}
					if err := tx.AddAttempt(cur.ID, &Attempt{N: 1, StartedAt: testNow, Outcome: "succeeded"}); err != nil {
						return err
					}
					done := cur.Clone()
					done.State, done.NextAttemptAt, done.Attempts = Succeeded, nil, 1
					done.Result, done.FinishedAt = json.RawMessage("100"), &testNow
					if tally {
						tx.AddTally(time.Now(), Tally{Attempts: 1, Succeeded: 1})
					}
					return tx.Replace(cur, done)
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpu.Report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func TestTask_MarshalJSON(t *testing.T) {
	b, err := json.Marshal(&Task{ID: ulid.Make(), State: Pending, URL: "http://h/"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["headers"].(map[string]any); !ok {
		t.Errorf("headers = %v; want {}", m["headers"])
	}
	if _, ok := m["args"].(map[string]any); !ok {
		t.Errorf("args = %v; want {}", m["args"])
	}
	for _, k := range []string{"json", "result", "error", "run_at", "key", "finished_at"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v, present %v; want null", k, v, ok)
		}
	}
	if m["state"] != "pending" {
		t.Errorf("state = %v", m["state"])
	}
}
