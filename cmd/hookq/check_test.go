package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// checkReport is the JSON that hookq check --json prints.
type checkReport struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
}

// checkJSONArgs runs hookq check --json with args and decodes its report.
func checkJSONArgs(t *testing.T, dir string, wantCode int, args ...string) checkReport {
	t.Helper()
	r := hookq(t, dir, append([]string{"check", "--json"}, args...)...)
	var rep checkReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != wantCode {
		t.Fatalf("check --json %v: exit %d (want %d), %v\nstdout: %s\nstderr: %s",
			args, r.code, wantCode, err, r.stdout, r.stderr)
	}
	return rep
}

// checkJSON runs hookq check --json on dir.
func checkJSON(t *testing.T, dir string, wantCode int) checkReport {
	t.Helper()
	return checkJSONArgs(t, dir, wantCode)
}

func TestCLI_CheckSound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)
	id := addTask(t, dir, recv.URL, "x=2", "y=2")
	addTask(t, dir, recv.URL, "x=1", "y=1")

	if rep := checkJSON(t, dir, 0); !rep.OK || len(rep.Problems) != 0 {
		t.Errorf("check of a sound store: %+v", rep)
	}
	if out := mustRun(t, dir, "check"); !strings.Contains(out, "sound") {
		t.Errorf("check printed %q; want it to say sound", out)
	}

	// Through a running server, and with DIR as the argument.
	srv := startServe(t, dir)
	mustRun(t, dir, "wait", id)
	if out := mustRun(t, t.TempDir(), "check", dir); !strings.Contains(out, "sound") {
		t.Errorf("check DIR with a server printed %q", out)
	}
	srv.stop(t)
}

func TestCLI_CheckFindsProblems(t *testing.T) {
	t.Parallel()
	recv := multiplyServer(t)

	// A counter that disagrees with the records: bbolt is happy, hookq's
	// invariants are not.
	dir := t.TempDir()
	addTask(t, dir, recv.URL, "x=2", "y=2")
	db, err := bolt.Open(filepath.Join(dir, storeFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		counts := tx.Bucket([]byte("counts"))
		c := counts.Cursor()
		k, _ := c.First()
		return counts.Put(k, binary.BigEndian.AppendUint64(nil, 41))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep := checkJSON(t, dir, 1)
	if rep.OK || len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), "count") {
		t.Errorf("check of a store with a wrong counter: %+v", rep)
	}
	r := hookq(t, dir, "check")
	if r.code != 1 || !strings.Contains(r.stdout, "problem") {
		t.Errorf("check: exit %d, stdout %q; want 1 and the problems", r.code, r.stdout)
	}

	// Pages overwritten with garbage (the two meta pages kept, so bbolt
	// opens the file): reported as a problem, not a crash of the command.
	dir = t.TempDir()
	for i := range 200 {
		mustRun(t, dir, "add", recv.URL, "x=1", "y="+strings.Repeat("9", i%50+1))
	}
	path := filepath.Join(dir, storeFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize() // bbolt's page size for a new file
	for off := 2 * pageSize; off+pageSize <= len(data); off += pageSize {
		for i := off + 16; i < off+pageSize; i++ {
			data[i] = 0xA5
		}
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r = hookq(t, dir, "check")
	if r.code != 1 || !strings.Contains(r.stdout, "problem") || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("check of damaged pages: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// Other commands, serve among them, refuse the store with the same
	// advice rather than crash.
	for _, args := range [][]string{{"ls"}, {"stats"}, {"serve", "--listen", "127.0.0.1:0"}} {
		r = hookq(t, dir, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "damaged") || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("%s of damaged pages: exit %d\nstderr: %s", args[0], r.code, r.stderr)
		}
	}
}

// TestCLI_DamagedLeafPage zeroes one leaf page in the middle of a store:
// bbolt opens the file, and the damage shows only when a command reads or
// writes that page. Every command must refuse with a message, not crash.
func TestCLI_DamagedLeafPage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&lines, `{"url": "http://127.0.0.1:9/x", "args": {"i": %d, "pad": "%s"}, `+
			`"run_at": "2099-01-01T00:00:00Z"}`+"\n", i, strings.Repeat("p", 200))
	}
	file := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(file, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, "add", "--quiet", "--from", file)

	// Find a leaf page halfway through the file, and zero it.
	path := filepath.Join(dir, storeFile)
	// Writable, for its free list: Page tells free pages from leaves.
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var leaf int
	db.View(func(tx *bolt.Tx) error {
		pages := int(tx.Size()) / db.Info().PageSize
		for id := pages / 2; id < pages && leaf == 0; id++ {
			if info, err := tx.Page(id); err == nil && info != nil && info.Type == "leaf" {
				leaf = id
			}
		}
		return nil
	})
	pageSize := db.Info().PageSize
	db.Close()
	if leaf == 0 {
		t.Fatal("no leaf page in the second half of the file")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, pageSize), int64(leaf*pageSize)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	out := t.TempDir()
	for _, args := range [][]string{{"ls", "--url", "nomatch"}, {"add", "http://127.0.0.1:9/y"},
		{"purge", "--older-than", "0s"}, {"check"}, {"serve", "--listen", "127.0.0.1:0"},
		{"backup", filepath.Join(out, "copy.db")}, {"compact"}} {
		r := hookq(t, dir, args...)
		out := r.stdout + r.stderr
		if r.code != 1 || !(strings.Contains(out, "damaged") || strings.Contains(out, "problem")) ||
			strings.Contains(out, "goroutine") {
			t.Errorf("%s on a damaged page: exit %d\n%s", args[0], r.code, out)
		}
	}
	// The backup that found the damage left no copy, nor a temporary file.
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("backup of a damaged store left %d files behind", len(entries))
	}
}

// TestCLI_CheckFile checks a store file given by its path, such as a
// backup, rather than a data directory.
func TestCLI_CheckFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/")
	out := t.TempDir()
	backup := filepath.Join(out, "bk.db")
	mustRun(t, dir, "backup", backup)

	// A server on another directory, found through $HOOKQ_DATA, must not
	// be the one checked.
	other := t.TempDir()
	startServe(t, other)
	cmd := exec.Command(hookqBin, "check", backup)
	cmd.Env = append(os.Environ(), envData+"="+other)
	got, err := cmd.Output()
	if want := backup + ": sound"; err != nil || !strings.HasPrefix(string(got), want) {
		t.Errorf("check FILE = %v, %q; want %q", err, got, want)
	}
	if rep := checkJSONArgs(t, t.TempDir(), 0, backup); !rep.OK {
		t.Errorf("check --json FILE: %+v", rep)
	}
	// A data directory's store file is its directory.
	if got := mustRun(t, t.TempDir(), "check", filepath.Join(dir, storeFile)); !strings.HasPrefix(got,
		filepath.Join(dir, storeFile)+": sound") {
		t.Errorf("check DIR/hookq.db printed %q", got)
	}

	// A file that is no store is a problem of the file.
	junk := filepath.Join(out, "junk.db")
	if err := os.WriteFile(junk, []byte("not a store\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := checkJSONArgs(t, t.TempDir(), 1, junk)
	if rep.OK || len(rep.Problems) != 1 || strings.Contains(rep.Problems[0], "not a directory") {
		t.Errorf("check of a file that is no store: %+v", rep)
	}
}
