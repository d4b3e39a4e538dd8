//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hookq/hookq/storage"
)

// TestServe_FileSizeLimit runs the real server with its file size limit
// lowered to the store's current size, a real OS-level write fault: every
// write that must grow the file fails. Enqueues are refused with a clear
// error and no acknowledgement, reads go on, writes succeed again once the
// limit is raised, and the store is sound with every acknowledged task.
func TestServe_FileSizeLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServe(t, dir)
	far := "--at=2099-01-01T00:00:00Z" // stays in the store, never dispatched
	big := "b=" + strings.Repeat("x", 30000)
	var acked []string
	add := func() result {
		r := hookq(t, dir, "add", far, "http://127.0.0.1:9/hook", big)
		if r.code == 0 {
			acked = append(acked, strings.TrimSpace(r.stdout))
		}
		return r
	}
	for range 3 {
		if r := add(); r.code != 0 {
			t.Fatalf("add before the limit: exit %d: %s", r.code, r.stderr)
		}
	}

	limit := func(soft uint64) {
		t.Helper()
		lim := unix.Rlimit{Cur: soft, Max: unix.RLIM_INFINITY}
		if err := unix.Prlimit(srv.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
			t.Skipf("cannot set the server's file size limit: %v", err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	limit(uint64(fi.Size()))

	// Writes fail once the free pages are used up; none is acknowledged.
	var refused result
	for range 50 {
		if r := add(); r.code != 0 {
			refused = r
			break
		}
	}
	if refused.code != 1 || !strings.Contains(refused.stderr, "no space left for the store") {
		t.Fatalf("add over the limit: exit %d, stderr %q; want 1 and a no-space error",
			refused.code, refused.stderr)
	}
	// Reads go on.
	var stats struct{ Total int }
	if err := json.Unmarshal([]byte(mustRun(t, dir, "stats", "--json")), &stats); err != nil ||
		stats.Total != len(acked) {
		t.Errorf("stats while full: total %d, %v; want %d", stats.Total, err, len(acked))
	}
	mustRun(t, dir, "show", acked[0])

	// Room again: writes succeed.
	limit(unix.RLIM_INFINITY)
	for range 3 {
		if r := add(); r.code != 0 {
			t.Fatalf("add after the limit is lifted: exit %d: %s", r.code, r.stderr)
		}
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}

	if out := mustRun(t, dir, "check"); !strings.Contains(out, "sound") {
		t.Errorf("check after the fault: %s", out)
	}
	for _, id := range acked {
		mustRun(t, dir, "show", id)
	}
}

// TestServe_FullDiskPausesDispatch: attempts whose outcome cannot be
// stored leave their tasks to run again; with a full disk that must not
// become a flood of duplicate deliveries. The server pauses dispatch,
// counts the failures in its metrics, and delivers every task once space
// returns.
func TestServe_FullDiskPausesDispatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	hits := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.Header.Get("webhook-id")]++
		mu.Unlock()
		io.WriteString(w, `{"status":"success","retval":"`+strings.Repeat("r", 2000)+`"}`)
	}))
	defer recv.Close()
	srv := startServe(t, dir)

	// Tasks that come due in a second, then a full disk: enqueue far-off
	// tasks under a file size limit until the file has no room left.
	due := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	var ids []string
	for range 30 {
		id, err := enqueueJSON(srv.addr, `{"url": "`+recv.URL+`/hook", "run_at": "`+due+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	fi, err := os.Stat(filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	setFsize(t, srv, uint64(fi.Size()))
	filler := `{"url": "http://127.0.0.1:9/x", "run_at": "2099-01-01T00:00:00Z", "args": {"pad": "` +
		strings.Repeat("p", 4000) + `"}}`
	for range 10000 {
		if _, err := enqueueJSON(srv.addr, filler); err != nil {
			break
		}
	}
	time.Sleep(4 * time.Second) // the tasks come due; the disk stays full

	mu.Lock()
	most := 0
	for _, n := range hits {
		most = max(most, n)
	}
	mu.Unlock()
	// The pause doubles from 100 ms: about 5 rounds in 3 s. A server that
	// re-dispatches at once sends thousands.
	if most > 15 {
		t.Errorf("a task was delivered %d times in 3 s while its outcome could not be stored", most)
	}
	resp, err := http.Get("http://" + srv.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if most == 0 {
		t.Fatal("no task came due and was delivered while the disk was full")
	}
	if !regexp.MustCompile(`(?m)^hookq_outcome_store_errors_total [1-9]`).Match(body) {
		t.Errorf("metrics do not count the outcomes that failed to be stored:\n%s",
			grepLines(string(body), "hookq_outcome"))
	}

	setFsize(t, srv, unix.RLIM_INFINITY)
	for _, id := range ids {
		if task := waitTask(t, srv.addr, id); task.State != storage.Succeeded {
			t.Errorf("task %s: %s after space returned", id, task.State)
		}
	}
	srv.stop(t)
}

// setFsize sets the soft file size limit of the server's process.
func setFsize(t *testing.T, srv *server, soft uint64) {
	t.Helper()
	lim := unix.Rlimit{Cur: soft, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(srv.cmd.Process.Pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Skipf("cannot set the server's file size limit: %v", err)
	}
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// enqueueJSON posts one task object and returns its ID once acknowledged.
func enqueueJSON(addr, task string) (string, error) {
	resp, err := http.Post("http://"+addr+"/v1/tasks", "application/json", strings.NewReader(task))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("enqueue: %s: %s", resp.Status, out.Error)
	}
	return out.ID, nil
}
