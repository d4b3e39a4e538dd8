package storage

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// openAppDB opens a bbolt file as an application would, with one bucket of
// its own holding one key.
func openAppDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "app.db"), 0o600, nil)
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		return b.Put([]byte("ada"), []byte("lovelace"))
	})
	if err != nil {
		t.Fatalf("app write: %v", err)
	}
	return db
}

func openDBTest(t *testing.T, db *bolt.DB, opts *Options) *Store {
	t.Helper()
	s, err := OpenDB(db, opts)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// topLevel returns the names of db's top-level buckets.
func topLevel(t *testing.T, db *bolt.DB) []string {
	t.Helper()
	var names []string
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("list buckets: %v", err)
	}
	return names
}

// checkAppData fails the test unless the application's bucket holds
// exactly what openAppDB put there, plus the extra keys given.
func checkAppData(t *testing.T, db *bolt.DB, extra ...string) {
	t.Helper()
	want := append([]string{"ada"}, extra...)
	slices.Sort(want)
	var got []string
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("users")).ForEach(func(k, _ []byte) error {
			got = append(got, string(k))
			return nil
		})
	})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("app keys = %q, %v; want %q", got, err, want)
	}
}

func counts(t *testing.T, s *Store) map[State]int64 {
	t.Helper()
	var c map[State]int64
	if err := s.View(func(tx *Tx) error { c = tx.Counts(); return nil }); err != nil {
		t.Fatalf("counts: %v", err)
	}
	return c
}

func TestStore_OpenDB(t *testing.T) {
	t.Run("OneBucketBesideTheApps", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		task := newTask(1)
		insert(t, s, task)

		if got := topLevel(t, db); !slices.Equal(got, []string{"hookq", "users"}) {
			t.Errorf("top-level buckets = %q; want [hookq users]", got)
		}
		checkAppData(t, db)
		if got := get(t, s, task.ID); got.URL != task.URL {
			t.Errorf("task URL = %q; want %q", got.URL, task.URL)
		}
		checkInvariants(t, s)
	})

	t.Run("OwnFileKeepsTopLevelBuckets", func(t *testing.T) {
		s, path := openTest(t)
		insert(t, s, newTask(1))
		s.Close()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		want := []string{"attempts", "counts", "keys", "meta", "schedule", "tallies", "tasks"}
		if got := topLevel(t, db); !slices.Equal(got, want) {
			t.Errorf("top-level buckets = %q; want %q", got, want)
		}
	})

	t.Run("BucketOption", func(t *testing.T) {
		db := openAppDB(t)
		openDBTest(t, db, &Options{Bucket: "outbox"})
		if got := topLevel(t, db); !slices.Equal(got, []string{"outbox", "users"}) {
			t.Errorf("top-level buckets = %q; want [outbox users]", got)
		}
	})

	t.Run("CloseLeavesTheDatabaseOpen", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		task := newTask(1)
		insert(t, s, task)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("users")).Put([]byte("grace"), []byte("hopper"))
		})
		if err != nil {
			t.Fatalf("app write after Close: %v", err)
		}
		if err := s.Update(context.Background(), func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Update after Close = %v; want ErrClosed", err)
		}

		// Reopened, the database still has the task and the app's data.
		path := db.Path()
		if err := db.Close(); err != nil {
			t.Fatalf("db.Close: %v", err)
		}
		db2, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db2.Close()
		s2 := openDBTest(t, db2, nil)
		if got := get(t, s2, task.ID); got.State != Pending {
			t.Errorf("reopened task state = %s; want pending", got.State)
		}
		checkAppData(t, db2, "grace")
		checkInvariants(t, s2)
	})

	t.Run("ReadOnlyDatabase", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		task := newTask(1)
		insert(t, s, task)
		s.Close()
		path := db.Path()
		db.Close()

		ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		rs := openDBTest(t, ro, nil)
		if got := get(t, rs, task.ID); got.ID != task.ID {
			t.Errorf("read-only get = %s; want %s", got.ID, task.ID)
		}
		err = rs.Update(context.Background(), func(*Tx) error { return nil })
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("Update on a read-only database = %v; want ErrReadOnly", err)
		}
		if _, err := OpenDB(ro, &Options{Bucket: "other"}); err == nil {
			t.Error("OpenDB of a read-only database without the bucket succeeded")
		}
	})

	t.Run("BucketDeletedByTheApp", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("hookq")) }); err != nil {
			t.Fatal(err)
		}
		if err := s.View(func(*Tx) error { return nil }); err == nil {
			t.Error("View without the store's bucket succeeded")
		}
		if err := s.Update(context.Background(), func(*Tx) error { return nil }); err == nil {
			t.Error("Update without the store's bucket succeeded")
		}
	})

	t.Run("InnerBucketDeletedByTheApp", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		task := newTask(1)
		insert(t, s, task)
		err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("hookq")).DeleteBucket(bucketTasks)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.View(func(tx *Tx) error { _, err := tx.Get(task.ID); return err })
		if !errors.Is(err, errMissingBucket) {
			t.Errorf("Get without the tasks bucket = %v; want errMissingBucket", err)
		}
		err = s.Update(context.Background(), func(*Tx) error { return nil })
		if !errors.Is(err, errMissingBucket) {
			t.Errorf("Update without the tasks bucket = %v; want errMissingBucket", err)
		}
		problems := s.Check()
		if len(problems) != 1 || !errors.Is(problems[0], errMissingBucket) {
			t.Errorf("Check without the tasks bucket = %v; want errMissingBucket", problems)
		}
	})

	t.Run("OneWriterPerBucket", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		if _, err := OpenDB(db, nil); err == nil {
			t.Fatal("second OpenDB on the same bucket succeeded")
		}
		openDBTest(t, db, &Options{Bucket: "other"})
		openDBTest(t, db, &Options{ReadOnly: true})
		s.Close()
		again := openDBTest(t, db, nil)
		insert(t, again, newTask(1))
	})

	t.Run("NilDatabase", func(t *testing.T) {
		if _, err := OpenDB(nil, nil); err == nil {
			t.Error("OpenDB(nil) succeeded")
		}
	})
}

func TestStore_UpdateTx(t *testing.T) {
	t.Run("CommitKeepsTaskAndAppWrite", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		task := newTask(1)
		key := "order-1"
		task.Key = &key
		err := db.Update(func(btx *bolt.Tx) error {
			if err := btx.Bucket([]byte("users")).Put([]byte("grace"), []byte("hopper")); err != nil {
				return err
			}
			return s.UpdateTx(btx, func(tx *Tx) error {
				_, _, err := tx.Insert(task)
				return err
			})
		})
		if err != nil {
			t.Fatalf("app transaction: %v", err)
		}
		if got := get(t, s, task.ID); got.Key == nil || *got.Key != key {
			t.Errorf("task key = %v; want %q", got.Key, key)
		}
		if c := counts(t, s); c[Pending] != 1 {
			t.Errorf("pending counter = %d; want 1", c[Pending])
		}
		checkAppData(t, db, "grace")
		checkInvariants(t, s)
	})

	t.Run("RollbackLeavesNothing", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		task := newTask(1)
		key := "order-1"
		task.Key = &key
		abort := errors.New("app changed its mind")
		err := db.Update(func(btx *bolt.Tx) error {
			if err := btx.Bucket([]byte("users")).Put([]byte("grace"), []byte("hopper")); err != nil {
				return err
			}
			if err := s.UpdateTx(btx, func(tx *Tx) error {
				_, _, err := tx.Insert(task)
				return err
			}); err != nil {
				return err
			}
			return abort
		})
		if !errors.Is(err, abort) {
			t.Fatalf("app transaction = %v; want %v", err, abort)
		}
		err = s.View(func(tx *Tx) error {
			_, err := tx.Get(task.ID)
			return err
		})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after rollback = %v; want ErrNotFound", err)
		}
		for st, n := range counts(t, s) {
			if n != 0 {
				t.Errorf("counter %s = %d after rollback; want 0", st, n)
			}
		}
		// The key is free: a task committed now takes it.
		other := newTask(2)
		other.Key = &key
		insert(t, s, other)
		if got := get(t, s, other.ID); got.Key == nil {
			t.Error("key not free after rollback")
		}
		checkAppData(t, db)
		checkInvariants(t, s)
	})

	t.Run("SeveralInOneTransaction", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		held := newTask(0)
		key := "k"
		held.Key = &key
		insert(t, s, held)

		var dup *Task
		err := db.Update(func(btx *bolt.Tx) error {
			for i := 1; i <= 3; i++ {
				if err := s.UpdateTx(btx, func(tx *Tx) error {
					_, _, err := tx.Insert(newTask(i))
					return err
				}); err != nil {
					return err
				}
			}
			again := newTask(4)
			again.Key = &key
			return s.UpdateTx(btx, func(tx *Tx) error {
				var err error
				dup, _, err = tx.Insert(again)
				return err
			})
		})
		if err != nil {
			t.Fatalf("app transaction: %v", err)
		}
		if dup == nil || dup.ID != held.ID {
			t.Errorf("insert with a held key returned %v; want task %s", dup, held.ID)
		}
		if c := counts(t, s); c[Pending] != 4 {
			t.Errorf("pending counter = %d; want 4", c[Pending])
		}
		checkInvariants(t, s)
	})

	t.Run("Refused", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		called := false
		fn := func(*Tx) error { called = true; return nil }

		if err := db.View(func(btx *bolt.Tx) error { return s.UpdateTx(btx, fn) }); err == nil {
			t.Error("UpdateTx in a read-only transaction succeeded")
		}
		other := openAppDB(t)
		if err := other.Update(func(btx *bolt.Tx) error { return s.UpdateTx(btx, fn) }); err == nil {
			t.Error("UpdateTx in another database's transaction succeeded")
		}
		btx, err := db.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		btx.Rollback()
		if err := s.UpdateTx(btx, fn); err == nil {
			t.Error("UpdateTx in a closed transaction succeeded")
		}
		s.Close()
		err = db.Update(func(btx *bolt.Tx) error { return s.UpdateTx(btx, fn) })
		if !errors.Is(err, ErrClosed) {
			t.Errorf("UpdateTx on a closed store = %v; want ErrClosed", err)
		}
		if called {
			t.Error("fn ran in a refused UpdateTx")
		}
	})

	t.Run("BesideTheCommitter", func(t *testing.T) {
		db := openAppDB(t)
		s := openDBTest(t, db, nil)
		const n = 50
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range n {
				err := s.Update(context.Background(), func(tx *Tx) error {
					_, _, err := tx.Insert(newTask(i))
					return err
				})
				if err != nil {
					t.Errorf("Update: %v", err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range n {
				err := db.Update(func(btx *bolt.Tx) error {
					return s.UpdateTx(btx, func(tx *Tx) error {
						_, _, err := tx.Insert(newTask(i))
						return err
					})
				})
				if err != nil {
					t.Errorf("app transaction: %v", err)
				}
			}
		}()
		wg.Wait()
		if c := counts(t, s); c[Pending] != 2*n {
			t.Errorf("pending counter = %d; want %d", c[Pending], 2*n)
		}
		checkInvariants(t, s)
	})
}
