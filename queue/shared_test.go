package queue

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openApp opens a bbolt file as an application would, with a bucket of its
// own, and closes it at the end of the test.
func openApp(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("orders"))
		return err
	}); err != nil {
		t.Fatalf("create app bucket: %v", err)
	}
	return db
}

// openOnDB opens a queue on db, closed before db at the end of the test.
func openOnDB(t *testing.T, db *bolt.DB, opts *Options) *Queue {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	q, err := OpenDB(db, opts)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	t.Cleanup(func() { q.Close() }) // cleanups run last-in first-out
	return q
}

// placeOrder is an application's transaction: it stores an order and
// enqueues its webhook in the same transaction, then commits unless fail
// is set. It returns the task EnqueueTx returned.
func placeOrder(t *testing.T, db *bolt.DB, q *Queue, order string, spec Spec, fail error) (*Task, error) {
	t.Helper()
	var task *Task
	err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("orders")).Put([]byte(order), []byte("placed")); err != nil {
			return err
		}
		var err error
		if task, err = q.EnqueueTx(tx, spec); err != nil {
			return err
		}
		return fail
	})
	return task, err
}

// orders returns the keys of the application's bucket.
func orders(t *testing.T, db *bolt.DB) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("orders")).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read orders: %v", err)
	}
	return out
}

func waitFor(t *testing.T, q *Queue, id ID) *Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	task, err := q.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	return task
}

func stats(t *testing.T, q *Queue) *Stats {
	t.Helper()
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func TestQueue_EnqueueTx(t *testing.T) {
	t.Run("CommitDelivers", func(t *testing.T) {
		srv := receiver(t, multiply)
		db := openApp(t, filepath.Join(t.TempDir(), "app.db"))
		q := openOnDB(t, db, nil)
		task, err := placeOrder(t, db, q, "o1",
			Spec{URL: srv.URL, Args: map[string]any{"x": 6, "y": 7}}, nil)
		if err != nil {
			t.Fatalf("app transaction: %v", err)
		}
		if task.Existing || task.State != Pending {
			t.Errorf("EnqueueTx = %s existing %v; want a new pending task", task.State, task.Existing)
		}
		got := waitFor(t, q, task.ID)
		if got.State != Succeeded || string(got.Result) != "42" {
			t.Errorf("task = %s result %s; want succeeded 42", got.State, got.Result)
		}
		if s := stats(t, q); s.Total != 1 || s.Counts["succeeded"] != 1 {
			t.Errorf("stats = %+v; want one succeeded task", s)
		}
		if got := orders(t, db); !slices.Equal(got, []string{"o1"}) {
			t.Errorf("orders = %q; want [o1]", got)
		}
		checkStore(t, q)
	})

	t.Run("RollbackLeavesNothing", func(t *testing.T) {
		var calls atomic.Int32
		srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			multiply(w, r)
		})
		db := openApp(t, filepath.Join(t.TempDir(), "app.db"))
		q := openOnDB(t, db, nil)
		abort := errors.New("payment declined")
		task, err := placeOrder(t, db, q, "o1", Spec{URL: srv.URL, Key: "order-o1"}, abort)
		if !errors.Is(err, abort) {
			t.Fatalf("app transaction = %v; want %v", err, abort)
		}
		if _, err := q.Get(context.Background(), task.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of a rolled-back task = %v; want ErrNotFound", err)
		}
		if s := stats(t, q); s.Total != 0 {
			t.Errorf("stats after rollback = %+v; want no task", s)
		}
		if got := orders(t, db); len(got) != 0 {
			t.Errorf("orders after rollback = %q; want none", got)
		}
		checkStore(t, q)

		// The key is free, and the one task that exists is the only one
		// the receiver ever sees.
		again, err := placeOrder(t, db, q, "o1",
			Spec{URL: srv.URL, Key: "order-o1", Args: map[string]any{"x": 2, "y": 3}}, nil)
		if err != nil {
			t.Fatalf("second app transaction: %v", err)
		}
		if again.Existing || again.ID == task.ID {
			t.Errorf("enqueue after rollback = %s existing %v; want a new task", again.ID, again.Existing)
		}
		if got := waitFor(t, q, again.ID); string(got.Result) != "6" {
			t.Errorf("result = %s; want 6", got.Result)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("receiver called %d times; want 1", n)
		}
		if s := stats(t, q); s.Total != 1 || s.Counts["succeeded"] != 1 {
			t.Errorf("stats = %+v; want one succeeded task", s)
		}
		checkStore(t, q)
	})

	t.Run("DispatchedOnlyAfterCommit", func(t *testing.T) {
		var committing atomic.Bool
		var early atomic.Int32
		srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
			if !committing.Load() {
				early.Add(1)
			}
			multiply(w, r)
		})
		db := openApp(t, filepath.Join(t.TempDir(), "app.db"))
		q := openOnDB(t, db, nil)

		btx, err := db.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		task, err := q.EnqueueTx(btx, Spec{URL: srv.URL, Args: map[string]any{"x": 1, "y": 1}})
		if err != nil {
			btx.Rollback()
			t.Fatalf("EnqueueTx: %v", err)
		}
		// Readers do not see the task while the transaction is open.
		if _, err := q.Get(context.Background(), task.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get before commit = %v; want ErrNotFound", err)
		}
		committing.Store(true)
		if err := btx.Commit(); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if got := waitFor(t, q, task.ID); got.State != Succeeded {
			t.Errorf("task = %s; want succeeded", got.State)
		}
		if n := early.Load(); n != 0 {
			t.Errorf("%d requests before the commit", n)
		}
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		db := openApp(t, filepath.Join(t.TempDir(), "app.db"))
		q := openOnDB(t, db, &Options{DisableWorkers: true})
		held, err := q.Enqueue(context.Background(), Spec{URL: "http://h/a", Key: "k1"})
		if err != nil {
			t.Fatal(err)
		}

		var got []*Task
		err = db.Update(func(tx *bolt.Tx) error {
			var err error
			got, err = q.EnqueueManyTx(tx, []Spec{
				{URL: "http://h/b", Key: "k1"}, // held by a committed task
				{URL: "http://h/c", Key: "k2"}, // new
				{URL: "http://h/d", Key: "k2"}, // held by the one before
			})
			if err != nil {
				return err
			}
			one, err := q.EnqueueTx(tx, Spec{URL: "http://h/e", Key: "k2"})
			got = append(got, one)
			return err
		})
		if err != nil {
			t.Fatalf("app transaction: %v", err)
		}
		if got[0].ID != held.ID || !got[0].Existing {
			t.Errorf("spec 0 = %s existing %v; want the held task %s", got[0].ID, got[0].Existing, held.ID)
		}
		if got[1].Existing || got[1].URL != "http://h/c" {
			t.Errorf("spec 1 = %s existing %v; want a new task", got[1].URL, got[1].Existing)
		}
		for i := 2; i < 4; i++ {
			if got[i].ID != got[1].ID || !got[i].Existing {
				t.Errorf("spec %d = %s existing %v; want task %s", i, got[i].ID, got[i].Existing, got[1].ID)
			}
		}
		if s := stats(t, q); s.Total != 2 || s.Counts["pending"] != 2 {
			t.Errorf("stats = %+v; want two pending tasks", s)
		}
		checkStore(t, q)
	})

	t.Run("Refused", func(t *testing.T) {
		dir := t.TempDir()
		db := openApp(t, filepath.Join(dir, "app.db"))
		q := openOnDB(t, db, &Options{DisableWorkers: true})
		spec := Spec{URL: "http://h/a"}

		err := db.View(func(tx *bolt.Tx) error { _, err := q.EnqueueTx(tx, spec); return err })
		if err == nil {
			t.Error("EnqueueTx in a read-only transaction succeeded")
		}
		other := openApp(t, filepath.Join(dir, "other.db"))
		err = other.Update(func(tx *bolt.Tx) error { _, err := q.EnqueueTx(tx, spec); return err })
		if err == nil {
			t.Error("EnqueueTx in another database's transaction succeeded")
		}
		own, err := Open(filepath.Join(dir, "hookq.db"), &Options{DisableWorkers: true})
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		err = db.Update(func(tx *bolt.Tx) error { _, err := own.EnqueueTx(tx, spec); return err })
		if err == nil {
			t.Error("EnqueueTx on a queue of its own file succeeded")
		}
		if _, err := q.EnqueueTx(nil, spec); err == nil {
			t.Error("EnqueueTx(nil) succeeded")
		}

		// An invalid spec writes nothing: the application may still commit.
		_, err = placeOrder(t, db, q, "o1", Spec{URL: "ftp://h/a"}, nil)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("EnqueueTx of an invalid spec = %v; want ErrInvalid", err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if _, err := q.EnqueueManyTx(tx, []Spec{spec, {URL: ""}}); !errors.Is(err, ErrInvalid) {
				t.Errorf("EnqueueManyTx with an invalid spec = %v; want ErrInvalid", err)
			}
			return tx.Bucket([]byte("orders")).Put([]byte("o2"), []byte("placed"))
		})
		if err != nil {
			t.Fatal(err)
		}
		if s := stats(t, q); s.Total != 0 {
			t.Errorf("stats = %+v; want no task", s)
		}
		if got := orders(t, db); !slices.Equal(got, []string{"o2"}) {
			t.Errorf("orders = %q; want [o2]", got)
		}

		q.Close()
		err = db.Update(func(tx *bolt.Tx) error { _, err := q.EnqueueTx(tx, spec); return err })
		if !errors.Is(err, ErrClosed) {
			t.Errorf("EnqueueTx after Close = %v; want ErrClosed", err)
		}
		checkStore(t, q)
	})

	t.Run("ExactCountsUnderLoad", func(t *testing.T) {
		srv := receiver(t, multiply)
		db := openApp(t, filepath.Join(t.TempDir(), "app.db"))
		q := openOnDB(t, db, &Options{Workers: 8})
		const rounds = 40
		var wg sync.WaitGroup
		ids := make(chan ID, 4*rounds)
		wg.Go(func() { // an application committing every other transaction
			for i := range rounds {
				var fail error
				if i%2 == 1 {
					fail = errors.New("rolled back")
				}
				var tasks []*Task
				err := db.Update(func(tx *bolt.Tx) error {
					var err error
					tasks, err = q.EnqueueManyTx(tx, []Spec{
						{URL: srv.URL, Args: map[string]any{"x": i, "y": 1}},
						{URL: srv.URL, Args: map[string]any{"x": i, "y": 2}},
					})
					if err != nil {
						return err
					}
					return fail
				})
				if fail == nil {
					if err != nil {
						t.Errorf("app transaction %d: %v", i, err)
						return
					}
					for _, task := range tasks {
						ids <- task.ID
					}
				}
			}
		})
		wg.Go(func() { // and hookq's own enqueues beside it
			for i := range rounds {
				task, err := q.Enqueue(context.Background(), Spec{URL: srv.URL, Args: map[string]any{"x": i, "y": 3}})
				if err != nil {
					t.Errorf("Enqueue %d: %v", i, err)
					return
				}
				ids <- task.ID
			}
		})
		wg.Wait()
		close(ids)
		n := 0
		for id := range ids {
			if got := waitFor(t, q, id); got.State != Succeeded {
				t.Errorf("task %s = %s; want succeeded", id, got.State)
			}
			n++
		}
		if want := rounds + rounds; n != want {
			t.Errorf("%d tasks committed; want %d", n, want)
		}
		if s := stats(t, q); s.Total != int64(n) || s.Counts["succeeded"] != int64(n) {
			t.Errorf("stats = %+v; want %d succeeded", s, n)
		}
		checkStore(t, q)
	})
}

func TestQueue_OpenDB(t *testing.T) {
	t.Run("ReopenKeepsTasksAndAppData", func(t *testing.T) {
		srv := receiver(t, multiply)
		path := filepath.Join(t.TempDir(), "app.db")
		db := openApp(t, path)
		q := openOnDB(t, db, &Options{DisableWorkers: true})
		task, err := placeOrder(t, db, q, "o1", Spec{URL: srv.URL, Args: map[string]any{"x": 3, "y": 3}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		// The application's database is still open after the queue closed.
		if err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("orders")).Put([]byte("o2"), []byte("placed"))
		}); err != nil {
			t.Fatalf("app write after Close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("db.Close: %v", err)
		}

		db = openApp(t, path)
		q = openOnDB(t, db, nil)
		if got := waitFor(t, q, task.ID); string(got.Result) != "9" {
			t.Errorf("result after reopen = %s; want 9", got.Result)
		}
		if got := orders(t, db); !slices.Equal(got, []string{"o1", "o2"}) {
			t.Errorf("orders = %q; want [o1 o2]", got)
		}
		var top []string
		db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				top = append(top, string(name))
				return nil
			})
		})
		if !slices.Equal(top, []string{"hookq", "orders"}) {
			t.Errorf("top-level buckets = %q; want [hookq orders]", top)
		}
		checkStore(t, q)
	})

	t.Run("ReadOnlyDatabase", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.db")
		db := openApp(t, path)
		q := openOnDB(t, db, &Options{DisableWorkers: true})
		task, err := q.Enqueue(context.Background(), Spec{URL: "http://h/a"})
		if err != nil {
			t.Fatal(err)
		}
		q.Close()
		db.Close()

		ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ro.Close() })
		rq := openOnDB(t, ro, nil)
		if got, err := rq.Get(context.Background(), task.ID); err != nil || got.ID != task.ID {
			t.Errorf("Get on a read-only database = %v, %v", got, err)
		}
		if _, err := rq.Enqueue(context.Background(), Spec{URL: "http://h/b"}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Enqueue on a read-only database = %v; want ErrReadOnly", err)
		}
	})

	t.Run("NilDatabase", func(t *testing.T) {
		if _, err := OpenDB(nil, nil); err == nil {
			t.Error("OpenDB(nil) succeeded")
		}
	})
}
