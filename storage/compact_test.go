package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fillAndThin stores n tasks, then deletes all but every tenth, leaving
// the file mostly free pages.
func fillAndThin(t *testing.T, s *Store, n int) (kept []ID) {
	t.Helper()
	tasks := make([]*Task, n)
	for i := range tasks {
		tasks[i] = newTask(i)
		tasks[i].JSON = []byte(`"padding padding padding padding"`)
	}
	insert(t, s, tasks...)
	err := s.Update(context.Background(), func(tx *Tx) error {
		for i, task := range tasks {
			if i%10 != 0 {
				if err := tx.Delete(task); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 10 {
		kept = append(kept, tasks[i].ID)
	}
	return kept
}

func TestCompact(t *testing.T) {
	s, path := openTest(t)
	kept := fillAndThin(t, s, 5000)
	s.Close()

	var calls int
	var last, total int64
	res, err := Compact(path, &CompactOptions{
		TxMaxSize: 64 << 10, // several transactions
		Backup:    path + ".bak",
		Progress: func(done, all int64) {
			calls++
			last, total = done, all
		},
	})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if res.After >= res.Before || res.Keys == 0 {
		t.Errorf("Compact = %+v; want a smaller file and keys copied", res)
	}
	if calls < 3 || last != total || total != res.Keys {
		t.Errorf("progress: %d calls, last %d of %d; want several ending at %d",
			calls, last, total, res.Keys)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != res.After {
		t.Errorf("file size %v (%v); want %d", fi, err, res.After)
	}
	if fi, err := os.Stat(path + ".bak"); err != nil || fi.Size() != res.Before {
		t.Errorf("backup %v (%v); want the original's %d bytes", fi, err, res.Before)
	}
	if _, err := os.Stat(path + TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary copy left behind: %v", err)
	}

	// The copy holds every task, with consistent indexes, and takes writes.
	s2, err := Open(path, nil)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer s2.Close()
	for _, id := range kept {
		get(t, s2, id)
	}
	checkInvariants(t, s2)
	insert(t, s2, newTask(9999))
	checkInvariants(t, s2)
}

func TestCompact_RemovesStaleCopyAndKeepsBackupSafe(t *testing.T) {
	s, path := openTest(t)
	fillAndThin(t, s, 100)
	s.Close()
	if err := os.WriteFile(path+TempSuffix, []byte("left by a killed compaction"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".bak", []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)

	// A backup path in use fails the compaction and leaves all as it was.
	if _, err := Compact(path, &CompactOptions{Backup: path + ".bak"}); err == nil {
		t.Fatal("Compact over an existing backup succeeded")
	}
	if now, _ := os.ReadFile(path); string(now) != string(orig) {
		t.Error("a failed compaction changed the store")
	}
	if _, err := os.Stat(path + TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copy left after a failure: %v", err)
	}

	if _, err := Compact(path, nil); err != nil {
		t.Fatalf("Compact: %v", err)
	}
}

func TestCompact_Locked(t *testing.T) {
	s, path := openTest(t) // held open
	_ = s
	_, err := Compact(path, &CompactOptions{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("Compact of a store in use = %v; want ErrLocked", err)
	}
}

func TestOpen_FileReplacedWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hookq.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, s, newTask(0))

	// Another opener waits for the lock; meanwhile a new file takes the
	// path (as a compaction does) and the old one's lock is released.
	opened := make(chan *Store, 1)
	go func() {
		s2, err := Open(path, &Options{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		opened <- s2
	}()
	// Wait until the opener has the old file open, as this process's
	// second descriptor of it.
	waitOpenFDs(t, path, 2)
	other := filepath.Join(dir, "other.db")
	s3, err := Open(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	marker := newTask(1)
	insert(t, s3, marker)
	s3.Close()
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := <-opened
	if s2 == nil {
		t.FailNow()
	}
	defer s2.Close()
	get(t, s2, marker.ID) // the file now at the path, not the unlinked one
}

// waitOpenFDs waits until this process has n descriptors open on path.
func waitOpenFDs(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		count := 0
		for _, e := range entries {
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == path {
				count++
			}
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open on %s; want %d", count, path, n)
		}
		time.Sleep(time.Millisecond)
	}
}
