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
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookq/hookq/storage"
)

// The soak test's length. CI runs the short form (20 kills, some seconds);
// for a long run set HOOKQ_SOAK_DURATION, e.g.
//
//	HOOKQ_SOAK_DURATION=30m go test -run Soak_KillNine -timeout 0 -v ./cmd/hookq
//
// which kills the server at random moments until the time is up, and
// HOOKQ_SOAK_KILLS to ask for a number of kills instead.
const (
	envSoakDuration = "HOOKQ_SOAK_DURATION"
	envSoakKills    = "HOOKQ_SOAK_KILLS"
	defaultKills    = 20
)

// soakLength reads the soak's length from the environment.
func soakLength(t *testing.T) (kills int, until time.Time) {
	kills = defaultKills
	if v := os.Getenv(envSoakKills); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", envSoakKills, v)
		}
		kills = n
	}
	if v := os.Getenv(envSoakDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a duration such as 30m", envSoakDuration, v)
		}
		return 0, time.Now().Add(d)
	}
	return kills, time.Time{}
}

// TestSoak_KillNine runs the real hookq serve under a steady load of
// producers enqueueing through its HTTP API, kill -9s it at random moments,
// restarts it on the same data directory each time, and then proves that
// nothing was lost: every acknowledged task is stored once and ends
// succeeded with its result, and the store passes every check. Duplicate
// deliveries (at-least-once) are counted and reported.
func TestSoak_KillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs the real binary; skipped with -short")
	}
	kills, until := soakLength(t)
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

	const producers = 8
	acked := make(map[string]int) // task ID → expected result
	var ackedMu sync.Mutex
	var seq atomic.Int64
	start := time.Now()
	done := func(round int) bool {
		if !until.IsZero() {
			return time.Now().After(until)
		}
		return round >= kills
	}

	round := 0
	for ; ; round++ {
		last := done(round)
		srv := startServe(t, data, "--workers", "32")
		addr := srv.addr

		// Producers enqueue until the server dies under them (or, in the
		// last round, until they have enqueued 2,000 more tasks).
		ctx, stop := context.WithCancel(context.Background())
		lastFrom := seq.Load()
		var wg sync.WaitGroup
		for range producers {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := seq.Add(1)
					if last && i > lastFrom+2000 {
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

		if !last {
			// Let it work for a random while, then kill -9 mid-run.
			time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
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
		break
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
	t.Logf("soak: %d kills in %s, %d acknowledged tasks, %d delivered, 0 lost, %d duplicate deliveries",
		round, elapsed.Round(time.Second), len(acked), delivered, dups)

	// The store is intact: bbolt's pages and every invariant, and each
	// acknowledged task is stored once, under its ID.
	st, err := storage.Open(filepath.Join(data, "hookq.db"), &storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, p := range st.Check() {
		t.Errorf("store check: %v", p)
	}
	st.View(func(tx *storage.Tx) error {
		for id := range acked {
			if _, err := tx.Get(mustID(t, id)); err != nil {
				t.Errorf("acknowledged task %s: %v", id, err)
			}
		}
		total := int64(0)
		for _, n := range tx.Counts() {
			total += n
		}
		if total < int64(len(acked)) {
			t.Errorf("the store holds %d tasks; %d were acknowledged", total, len(acked))
		}
		return nil
	})
}

// TestSoak_StopCont freezes the server with SIGSTOP while attempts are in
// flight, for longer than their deadline, and thaws it with SIGCONT. An
// attempt never outlives its lease: the receiver must never see two
// requests for one task at the same time.
func TestSoak_StopCont(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary; skipped with -short")
	}
	data := t.TempDir()
	var (
		mu       sync.Mutex
		inFlight = map[string]int{}
		seen     = map[string]int{}
		overlaps []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		mu.Lock()
		if inFlight[id] > 0 {
			overlaps = append(overlaps, id)
		}
		inFlight[id]++
		seen[id]++
		first := seen[id] == 1
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight[id]--
			mu.Unlock()
		}()
		if first {
			// The first delivery outlasts the attempt's deadline, unless
			// hookq hangs up first.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
		io.WriteString(w, `{"status":"success","retval":1}`)
	}))
	defer recv.Close()

	srv := startServe(t, data, "--timeout", "1s", "--backoff-base", "50ms", "--backoff-cap", "100ms")
	var ids []string
	for i := range 20 {
		id, err := enqueue(t.Context(), srv.addr, fmt.Sprintf("%s/slow?x=%d", recv.URL, i), int64(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for range 3 {
		time.Sleep(300 * time.Millisecond) // attempts are in flight
		srv.signal(t, syscall.SIGSTOP)
		time.Sleep(1500 * time.Millisecond) // past their deadline
		srv.signal(t, syscall.SIGCONT)
	}
	for _, id := range ids {
		task := waitTask(t, srv.addr, id)
		if task.State != storage.Succeeded {
			t.Errorf("task %s: %s (%+v)", id, task.State, task.Error)
		}
		if task.Attempts < 2 {
			t.Errorf("task %s succeeded at attempt %d: its first attempt should have "+
				"outlived its deadline", id, task.Attempts)
		}
	}
	srv.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("overlapping requests for %d tasks: %v", len(overlaps), overlaps)
	}
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
