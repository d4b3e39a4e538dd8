package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookq/hookq/internal/failpoint"
	"github.com/hookq/hookq/storage"
)

// The hookq binary built with failpoints, once, for the tests that need it.
var (
	fpOnce sync.Once
	fpBin  string
	fpErr  error
)

func failpointBinary(t *testing.T) string {
	t.Helper()
	fpOnce.Do(func() {
		fpBin = filepath.Join(filepath.Dir(hookqBin), "hookq-failpoints")
		out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", fpBin, ".").CombinedOutput()
		if err != nil {
			fpErr = fmt.Errorf("build with failpoints: %v\n%s", err, out)
		}
	})
	if fpErr != nil {
		t.Fatal(fpErr)
	}
	return fpBin
}

// startServeFP starts the failpoint build of hookq serve on dir with the
// failpoints armed (name=N,...).
func startServeFP(t *testing.T, dir, armed string, args ...string) *server {
	t.Helper()
	args = append([]string{"--data", dir, "serve", "--listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(failpointBinary(t), args...)
	cmd.Env = append(os.Environ(), "HOOKQ_FAILPOINTS="+armed)
	cmd.WaitDelay = time.Second
	return serving(t, startCmd(t, cmd, args))
}

// deliveryLog is a receiver that answers the multiply callback and notes
// when each delivery of each task started.
type deliveryLog struct {
	mu     sync.Mutex
	starts map[string][]time.Time
}

func newDeliveryLog(t *testing.T) (*deliveryLog, *httptest.Server) {
	l := &deliveryLog{starts: make(map[string][]time.Time)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		id := r.Header.Get("webhook-id")
		l.starts[id] = append(l.starts[id], time.Now())
		l.mu.Unlock()
		x, _ := strconv.Atoi(r.URL.Query().Get("x"))
		y, _ := strconv.Atoi(r.URL.Query().Get("y"))
		fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
	}))
	t.Cleanup(srv.Close)
	return l, srv
}

// loadUntilDeath enqueues through the API from several producers until
// the server dies, and returns the acknowledged tasks.
func loadUntilDeath(t *testing.T, srv *server, recvURL string) map[string]int {
	t.Helper()
	acked := make(map[string]int)
	var mu sync.Mutex
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var seq sync.Mutex
	n := 0
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				seq.Lock()
				n++
				i := n
				seq.Unlock()
				id, err := enqueue(ctx, srv.addr, fmt.Sprintf("%s/multiply?x=%d", recvURL, i), int64(i))
				if err != nil {
					continue
				}
				mu.Lock()
				acked[id] = i * 7
				mu.Unlock()
			}
		})
	}
	select {
	case <-srv.done:
	case <-time.After(3 * patience):
		t.Fatalf("the failpoint was never reached; server log:\n%s", srv.log.String())
	}
	stop()
	wg.Wait()
	if !strings.Contains(srv.log.String(), "failpoint ") {
		t.Fatalf("the server died, but not at its failpoint:\n%s", srv.log.String())
	}
	return acked
}

// verifyAfterCrash restarts a normal server on dir, waits for every task in
// acked to finish, and checks what a crash must never break: each
// acknowledged task is stored and succeeds with its result (unless
// allowGone, for a sweep that may delete it), the store is sound, and no
// task was delivered again after it was final.
func verifyAfterCrash(t *testing.T, dir string, acked map[string]int, deliveries *deliveryLog, allowGone bool) {
	t.Helper()
	srv := startServe(t, dir)
	final := make(map[string]time.Time)
	for id, want := range acked {
		task, ok := getTask(t, srv.addr, id)
		if !ok {
			if !allowGone {
				t.Errorf("acknowledged task %s is gone", id)
			}
			continue
		}
		if !task.State.Final() {
			task = waitTask(t, srv.addr, id)
		}
		if task.State != storage.Succeeded || string(task.Result) != strconv.Itoa(want) {
			t.Errorf("task %s: %s with result %s; want succeeded with %d", id, task.State, task.Result, want)
			continue
		}
		final[id] = *task.FinishedAt
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}

	deliveries.mu.Lock()
	for id, at := range final {
		for _, start := range deliveries.starts[id] {
			if start.After(at) {
				t.Errorf("task %s was delivered at %s, after it finished at %s",
					id, start.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
			}
		}
	}
	deliveries.mu.Unlock()

	if out := mustRun(t, dir, "check"); !strings.Contains(out, "sound") {
		t.Errorf("check after the crash: %s", out)
	}
}

// getTask reads a task through the API; ok is false on 404.
func getTask(t *testing.T, addr, id string) (*storage.Task, bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/tasks/" + id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false
	}
	return waitTask(t, addr, id), true
}

// TestFailpoints crashes the real server at each of hookq's durability
// boundaries, under load, and checks on restart that nothing acknowledged
// was lost, the store's indexes and counters agree with its records, and
// no final task was dispatched again.
func TestFailpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary; skipped with -short")
	}
	for _, tt := range []struct {
		point string
		hits  int
	}{
		{failpoint.CommitBatch, 300},
		{failpoint.CommitBeforeSync, 40},
		{failpoint.CommitAfterSync, 40},
		{failpoint.EnqueueAfterCommit, 200},
		{failpoint.OutcomeBeforeCommit, 150},
		{failpoint.OutcomeAfterCommit, 150},
	} {
		t.Run(tt.point, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			deliveries, recv := newDeliveryLog(t)
			srv := startServeFP(t, dir, fmt.Sprintf("%s=%d", tt.point, tt.hits), "--workers", "16")
			acked := loadUntilDeath(t, srv, recv.URL)
			if len(acked) == 0 {
				t.Fatal("no task was acknowledged before the crash")
			}
			verifyAfterCrash(t, dir, acked, deliveries, false)
		})
	}

	t.Run(failpoint.SweepBetweenBatches, func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		deliveries, recv := newDeliveryLog(t)
		// 2,500 finished tasks: the sweep deletes at most 1,000 per
		// transaction, so it crosses the failpoint.
		var lines strings.Builder
		for i := range 2500 {
			fmt.Fprintf(&lines, `{"url": "%s/multiply?x=%d", "args": {"y": 7}}`+"\n", recv.URL, i)
		}
		file := filepath.Join(t.TempDir(), "tasks.jsonl")
		if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		ids := strings.Fields(mustRun(t, dir, "add", "--from", file))
		acked := make(map[string]int, len(ids))
		for i, id := range ids {
			acked[id] = i * 7
		}
		srv := startServe(t, dir, "--retention", "1h")
		for id := range acked {
			waitTask(t, srv.addr, id)
		}
		srv.stop(t)

		time.Sleep(1100 * time.Millisecond) // every task is now older than 1s
		srv = startServeFP(t, dir, failpoint.SweepBetweenBatches+"=1", "--retention", "1s")
		select {
		case <-srv.done:
		case <-time.After(3 * patience):
			t.Fatalf("the sweep never reached its failpoint:\n%s", srv.log.String())
		}
		verifyAfterCrash(t, dir, acked, deliveries, true)
		// One transaction of 1,000 deletions committed, the next did not
		// start; the restarted server keeps tasks for the default 7 days.
		var stats struct{ Total int }
		if err := json.Unmarshal([]byte(mustRun(t, dir, "stats", "--json")), &stats); err != nil ||
			stats.Total != 1500 {
			t.Errorf("after one sweep transaction: %d tasks left, %v; want 1,500", stats.Total, err)
		}
	})
}
