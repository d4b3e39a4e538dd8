package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookq/hookq/storage"
)

// TestCrash_KillNineLosesNothing runs the real hookq serve, enqueues tasks
// through its HTTP API while kill -9 hits it several times, restarts it on
// the same data directory, and checks that every acknowledged task ends
// succeeded with its result, and that the store's invariants hold.
func TestCrash_KillNineLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs the real binary; skipped with -short")
	}
	data := t.TempDir()

	// The receiver counts deliveries per task ID to report duplicates.
	var deliveries sync.Map // webhook-id → *atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := deliveries.LoadOrStore(r.Header.Get("webhook-id"), new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		x, _ := strconv.Atoi(r.URL.Query().Get("x"))
		y, _ := strconv.Atoi(r.URL.Query().Get("y"))
		fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
	}))
	defer recv.Close()

	const kills, producers = 5, 8
	acked := make(map[string]int) // task ID → expected result
	var ackedMu sync.Mutex
	var seq atomic.Int64
	start := time.Now()

	for round := 0; round <= kills; round++ {
		srv := startServe(t, data, "--workers", "32")
		addr := srv.addr

		// Producers enqueue until the server dies under them (or, in the
		// last round, until they have enqueued their share).
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range producers {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := seq.Add(1)
					if round == kills && i > 3000 {
						return
					}
					id, err := enqueue(ctx, addr, fmt.Sprintf("%s/multiply?x=%d", recv.URL, i), i)
					if err != nil {
						continue // not acknowledged: may or may not exist
					}
					ackedMu.Lock()
					acked[id] = int(i) * 7
					ackedMu.Unlock()
				}
			})
		}

		if round < kills {
			// Let it work for a random while, then kill -9 mid-run.
			time.Sleep(time.Duration(150+rand.IntN(350)) * time.Millisecond)
			srv.signal(t, syscall.SIGKILL)
			srv.wait(t)
			stop()
			wg.Wait()
			continue
		}
		wg.Wait()
		stop()

		// Last round: every acknowledged task must reach succeeded.
		ackedMu.Lock()
		ids := make([]string, 0, len(acked))
		for id := range acked {
			ids = append(ids, id)
		}
		ackedMu.Unlock()
		for _, id := range ids {
			task := waitTask(t, addr, id)
			if task.State != storage.Succeeded {
				t.Errorf("task %s: %s (%+v)", id, task.State, task.Error)
				continue
			}
			if got := string(task.Result); got != strconv.Itoa(acked[id]) {
				t.Errorf("task %s: result %s; want %d", id, got, acked[id])
			}
		}
		if code := srv.stop(t); code != 0 {
			t.Errorf("serve exited %d after SIGTERM", code)
		}
	}
	elapsed := time.Since(start)

	// Duplicates are allowed (at-least-once) but reported.
	var dups, delivered int
	deliveries.Range(func(_, v any) bool {
		delivered++
		if n := v.(*atomic.Int32).Load(); n > 1 {
			dups += int(n) - 1
		}
		return true
	})
	t.Logf("%d kills, %d acknowledged tasks, %d delivered, %d duplicate deliveries, %.0f tasks/s",
		kills, len(acked), delivered, dups, float64(len(acked))/elapsed.Seconds())

	// The store is intact: every invariant holds.
	st, err := storage.Open(filepath.Join(data, "hookq.db"), &storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.View(func(tx *storage.Tx) error {
		for _, p := range tx.Check() {
			t.Errorf("store invariant: %v", p)
		}
		for id := range acked {
			if _, err := tx.Get(mustID(t, id)); err != nil {
				t.Errorf("acknowledged task %s: %v", id, err)
			}
		}
		return nil
	})
}

// enqueue posts one task and returns its ID once the server acknowledged it.
func enqueue(ctx context.Context, addr, url string, i int64) (string, error) {
	body, _ := json.Marshal(map[string]any{"url": url, "args": map[string]any{"y": 7}})
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/tasks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("enqueue: %s: %s", resp.Status, b)
	}
	var task storage.Task
	if err := json.NewDecoder(resp.Body).Decode(&task); err != nil {
		return "", err
	}
	return task.ID.String(), nil
}

// waitTask waits until the task is final, through the API's long poll.
func waitTask(t *testing.T, addr, id string) *storage.Task {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v1/tasks/" + id + "/wait?timeout=10s")
		if err != nil {
			t.Fatalf("wait %s: %v", id, err)
		}
		var task storage.Task
		err = json.NewDecoder(resp.Body).Decode(&task)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("wait %s: decode: %v", id, err)
		}
		if task.State.Final() {
			return &task
		}
	}
	t.Fatalf("task %s not final within 60s", id)
	return nil
}

func mustID(t *testing.T, s string) storage.ID {
	t.Helper()
	id, err := storage.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
