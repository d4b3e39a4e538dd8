//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
