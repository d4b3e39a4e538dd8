package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookq/hookq/queue"
)

// holdStore opens the store of dir in the test's process, which holds its
// lock until the test ends.
func holdStore(t *testing.T, dir string) {
	t.Helper()
	q, err := queue.Open(filepath.Join(dir, storeFile), &queue.Options{DisableWorkers: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { q.Close() })
}

func TestCLI_BusyStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	holdStore(t, dir)

	begin := time.Now()
	r := hookq(t, dir, "add", "http://127.0.0.1:1/")
	if r.code != 1 || !strings.Contains(r.stderr, "is busy") {
		t.Errorf("add on a busy store = exit %d, stderr %q; want 1 saying the store is busy",
			r.code, r.stderr)
	}
	if d := time.Since(begin); d < writeLockTimeout-time.Second {
		t.Errorf("add gave up after %s; want about %s", d, writeLockTimeout)
	}
}

func TestCLI_ConcurrentAddsWithoutServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const adds = 20
	var wg sync.WaitGroup
	results := make([]result, adds)
	for i := range adds {
		wg.Go(func() { results[i] = hookq(t, dir, "add", "--in", "1h", "http://127.0.0.1:1/") })
	}
	wg.Wait()
	ids := make(map[string]bool)
	for _, r := range results {
		if r.code != 0 || !idRE.MatchString(r.stdout) {
			t.Errorf("add = exit %d, stdout %q, stderr %q; want a task ID", r.code, r.stdout, r.stderr)
		}
		ids[r.stdout] = true
	}
	if len(ids) != adds {
		t.Errorf("%d adds made %d distinct tasks", adds, len(ids))
	}
}

func TestCLI_ServerDoesNotAnswer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the request timeout; skipped with -short")
	}
	// A socket that accepts connections (the kernel's backlog does) but
	// never answers, as a server stopped with SIGSTOP does.
	dir := t.TempDir()
	sock := filepath.Join(dir, socketFile)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	p := start(t, dir, "stats")
	select {
	case <-p.done:
	case <-time.After(requestTimeout + patience):
		t.Fatalf("stats still waits for a server that does not answer")
	}
	want := "server at " + sock + " did not answer within 30s"
	if p.code != 1 || !strings.Contains(p.log.String(), want) {
		t.Errorf("stats = exit %d, stderr %q; want 1 and %q", p.code, p.log.String(), want)
	}
}

func TestServe_StoreHeldLeavesNoSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	holdStore(t, dir)

	r := hookq(t, dir, "serve", "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "another hookq process holds") {
		t.Errorf("serve on a held store = exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, socketFile)); !os.IsNotExist(err) {
		t.Errorf("serve left its socket behind: %v", err)
	}
}
