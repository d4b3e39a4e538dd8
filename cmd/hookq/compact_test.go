package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// addMany adds n scheduled tasks of about 2 KB each through add --from
// and returns their IDs.
func addMany(t *testing.T, dir string, n int) []string {
	t.Helper()
	var b strings.Builder
	pad := strings.Repeat("x", 2000)
	for i := range n {
		fmt.Fprintf(&b, `{"url":"http://127.0.0.1:1/%d","run_at":"2099-01-01T00:00:00Z","args":{"p":%q}}`+"\n",
			i, pad)
	}
	r := hookqIn(t, dir, b.String(), "add", "--from", "-")
	if r.code != 0 {
		t.Fatalf("add --from = exit %d: %s", r.code, r.stderr)
	}
	return strings.Fields(r.stdout)
}

// fillStore adds n tasks, cancels and purges them, leaving the file mostly
// free, then adds keep tasks, which stay scheduled, and returns the first.
func fillStore(t *testing.T, dir string, n, keep int) (kept string) {
	t.Helper()
	addMany(t, dir, n)
	mustRun(t, dir, "cancel", "--state", "scheduled", "--yes")
	mustRun(t, dir, "purge", "--older-than", "0s")
	return addMany(t, dir, keep)[0]
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

var compactedRE = regexp.MustCompile(`^compacted (\S+): [0-9.]+ [KMG]?i?B -> [0-9.]+ [KMG]?i?B \(\d+% smaller\)\n$`)

func TestCompact(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kept := fillStore(t, dir, 3000, 1)
	store := filepath.Join(dir, storeFile)
	before, _ := os.Stat(store)

	// A running server holds the store: compact refuses, and says why.
	srv := startServe(t, dir)
	r := hookq(t, dir, "compact")
	if r.code != 1 || !strings.Contains(r.stderr, "compact works offline only") {
		t.Errorf("compact with a server = exit %d, stderr %q; want 1 and offline only", r.code, r.stderr)
	}
	srv.stop(t)

	out := mustRun(t, dir, "compact")
	if !compactedRE.MatchString(out) {
		t.Errorf("compact printed %q; want %s", out, compactedRE)
	}
	after, _ := os.Stat(store)
	if after.Size()*4 > before.Size() {
		t.Errorf("compact left %d bytes of %d; want far fewer", after.Size(), before.Size())
	}
	if st := showJSON(t, dir, kept)["state"]; st != "scheduled" {
		t.Errorf("the kept task is %v after compact; want scheduled", st)
	}
	if _, err := os.Stat(store + backupSuffix); !os.IsNotExist(err) {
		t.Errorf("compact kept a backup unasked: %v", err)
	}

	// --keep-backup keeps the original, and refuses to overwrite one.
	mustRun(t, dir, "compact", "--keep-backup")
	if _, err := os.Stat(store + backupSuffix); err != nil {
		t.Errorf("no backup: %v", err)
	}
	if r := hookq(t, dir, "compact", "--keep-backup"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second compact --keep-backup = exit %d, stderr %q", r.code, r.stderr)
	}

	// The store takes writes, through a server, after compaction.
	startServe(t, dir)
	addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/")
}

func TestCompact_ProgressOnTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillStore(t, dir, 200, 1)
	tm := startTerminal(t, dir, "compact")
	if code := tm.wait(t); code != 0 {
		t.Fatalf("compact on a terminal = exit %d:\n%s", code, tm.output())
	}
	out := tm.output()
	if !strings.Contains(out, "\rcompacting [") || !strings.Contains(out, "] 100% ") {
		t.Errorf("compact on a terminal shows no progress bar:\n%q", out)
	}

	// Not on a terminal: the final line alone.
	if out := mustRun(t, dir, "compact"); !compactedRE.MatchString(out) {
		t.Errorf("compact printed %q", out)
	}
}

// TestCompact_FailsMidway fails the copy part way through with a file size
// limit on the process: the store must be left exactly as it was.
func TestCompact_FailsMidway(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillStore(t, dir, 1500, 600) // 1.2 MB of live data
	store := filepath.Join(dir, storeFile)
	want := fileHash(t, store)

	// 512 KiB: well under the live data, so the copy fails with EFBIG.
	cmd := exec.Command("sh", "-c", `ulimit -f 1024 && exec "$0" "$@"`, hookqBin,
		"--data", dir, "compact")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil || !strings.Contains(stderr.String(), "file too large") {
		t.Fatalf("compact under a file size limit = %v, stderr %q; want a failure", err, stderr.String())
	}
	if fileHash(t, store) != want {
		t.Error("a failed compaction changed the store")
	}
	if _, err := os.Stat(store + ".compact"); !os.IsNotExist(err) {
		t.Errorf("a failed compaction left its copy: %v", err)
	}
	mustRun(t, dir, "compact")
}

// TestCompact_Killed kills compactions at various moments: the store must
// open with every task whatever the moment, and the next compaction must
// clear what a killed one left.
func TestCompact_Killed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kept := fillStore(t, dir, 3000, 1000)
	store := filepath.Join(dir, storeFile)
	copyPath := store + ".compact"

	killedMidway := false
	for range 5 {
		p := start(t, dir, "compact")
		// Kill it as soon as its copy appears, or once it is done.
		for {
			if _, err := os.Stat(copyPath); err == nil {
				break
			}
			select {
			case <-p.done:
			default:
				continue
			}
			break
		}
		p.signal(t, syscall.SIGKILL)
		p.wait(t)
		if _, err := os.Stat(copyPath); err == nil {
			killedMidway = true
		}
		var task map[string]any
		if err := json.Unmarshal([]byte(mustRun(t, dir, "show", "--json", kept)), &task); err != nil ||
			task["state"] != "scheduled" {
			t.Fatalf("after a killed compaction the kept task is %v (%v)", task["state"], err)
		}
		var stats struct{ Total int }
		if err := json.Unmarshal([]byte(mustRun(t, dir, "stats", "--json")), &stats); err != nil ||
			stats.Total != 1000 {
			t.Fatalf("after a killed compaction the store holds %d tasks (%v); want 1000",
				stats.Total, err)
		}
	}
	if !killedMidway {
		t.Log("no compaction was killed before its rename; the store was checked all the same")
	}
	mustRun(t, dir, "compact")
	if _, err := os.Stat(copyPath); !os.IsNotExist(err) {
		t.Errorf("compaction left a killed run's copy: %v", err)
	}
}
