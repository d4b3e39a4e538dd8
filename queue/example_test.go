package queue_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/hookq/hookq/queue"
)

// multiply is a receiver of Celery's HTTP callback protocol: it answers
// x*y.
func multiply(w http.ResponseWriter, r *http.Request) {
	x, _ := strconv.Atoi(r.FormValue("x"))
	y, _ := strconv.Atoi(r.FormValue("y"))
	fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
}

// tempDir returns a new directory and a function that removes it.
func tempDir() (string, func()) {
	dir, err := os.MkdirTemp("", "hookq-example")
	if err != nil {
		log.Fatal(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}

func ExampleOpen() {
	srv := httptest.NewServer(http.HandlerFunc(multiply))
	defer srv.Close()
	dir, cleanup := tempDir()
	defer cleanup()

	q, err := queue.Open(filepath.Join(dir, "hookq.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	// Enqueue returns once the task is on disk; Wait returns once it is
	// final.
	ctx := context.Background()
	task, err := q.Enqueue(ctx, queue.Spec{
		URL:  srv.URL + "/multiply",
		Args: map[string]any{"x": 10, "y": 10},
	})
	if err != nil {
		log.Fatal(err)
	}
	done, err := q.Wait(ctx, task.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.State, string(done.Result), done.Attempts)
	// Output: succeeded 100 1
}

func ExampleQueue_EnqueueTx() {
	srv := httptest.NewServer(http.HandlerFunc(multiply))
	defer srv.Close()
	dir, cleanup := tempDir()
	defer cleanup()

	// The application's own database, and a queue inside it.
	db, err := bolt.Open(filepath.Join(dir, "app.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	q, err := queue.OpenDB(db, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close() // before db.Close: deferred calls run last first

	// The order and its webhook are stored together, or not at all.
	var task *queue.Task
	err = db.Update(func(tx *bolt.Tx) error {
		orders, err := tx.CreateBucketIfNotExists([]byte("orders"))
		if err != nil {
			return err
		}
		if err := orders.Put([]byte("order-1"), []byte("6 boxes of 7")); err != nil {
			return err
		}
		task, err = q.EnqueueTx(tx, queue.Spec{
			URL:  srv.URL + "/multiply",
			Args: map[string]any{"x": 6, "y": 7},
			Key:  "order-1",
		})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	done, err := q.Wait(context.Background(), task.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(done.State, string(done.Result))
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			fmt.Println("bucket:", string(name))
			return nil
		})
	})
	// Output:
	// succeeded 42
	// bucket: hookq
	// bucket: orders
}

func ExampleQueue_List() {
	dir, cleanup := tempDir()
	defer cleanup()

	// A queue without workers only stores tasks, as the CLI does when no
	// server runs.
	q, err := queue.Open(filepath.Join(dir, "hookq.db"), &queue.Options{DisableWorkers: true})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()

	ctx := context.Background()
	tasks, err := q.EnqueueMany(ctx, []queue.Spec{
		{URL: "http://127.0.0.1:9/a"},
		{URL: "http://127.0.0.1:9/b"},
		{URL: "http://127.0.0.1:9/c"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := q.Cancel(ctx, tasks[1].ID); err != nil {
		log.Fatal(err)
	}

	list, err := q.List(ctx, queue.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range list {
		fmt.Println(t.URL, t.State)
	}
	stats, err := q.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pending:", stats.Counts["pending"], "cancelled:", stats.Counts["cancelled"],
		"total:", stats.Total)
	// Output:
	// http://127.0.0.1:9/c pending
	// http://127.0.0.1:9/b cancelled
	// http://127.0.0.1:9/a pending
	// pending: 2 cancelled: 1 total: 3
}
