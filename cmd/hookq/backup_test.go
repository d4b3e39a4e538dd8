package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI_Backup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)
	out := t.TempDir()

	// Without a server the store is read directly.
	first := addTask(t, dir, recv.URL, "x=2", "y=3")
	offline := filepath.Join(out, "offline.db")
	if got := mustRun(t, dir, "backup", offline); !strings.HasPrefix(got, "wrote "+offline) {
		t.Errorf("backup printed %q", got)
	}
	if r := hookq(t, dir, "backup", offline); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("backup over an existing file: exit %d, stderr %q; want 1 and a hint at --force",
			r.code, r.stderr)
	}

	// With a server running, through it, while it dispatches.
	srv := startServe(t, dir)
	// Never over the store itself, nor over a store a process holds: the
	// server would go on writing to a deleted file.
	store := filepath.Join(dir, storeFile)
	other := t.TempDir()
	otherSrv := startServe(t, other)
	for _, target := range []string{store, filepath.Join(other, storeFile)} {
		r := hookq(t, dir, "backup", "--force", target)
		if r.code == 0 || !strings.Contains(r.stderr, "elsewhere") {
			t.Errorf("backup --force %s: exit %d, %s; want a refusal", target, r.code, r.stderr)
		}
	}
	otherSrv.stop(t)
	mustRun(t, dir, "wait", first)
	second := addTask(t, dir, recv.URL, "x=4", "y=5")
	mustRun(t, dir, "wait", second)
	online := filepath.Join(out, "online.db")
	mustRun(t, dir, "backup", online)
	mustRun(t, dir, "backup", "--force", offline)
	srv.stop(t)

	// Each copy is a store that hookq reads as it was.
	for _, copy := range []string{online, offline} {
		restored := t.TempDir()
		data, err := os.ReadFile(copy)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(restored, storeFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]string{first: "6\n", second: "20\n"} {
			if got := mustRun(t, restored, "wait", id); got != want {
				t.Errorf("%s: wait %s = %q; want %q", filepath.Base(copy), id, got, want)
			}
		}
	}

	// Nothing but the copies is left in the output directory.
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output directory holds %v; want the two copies only", names)
	}
}
