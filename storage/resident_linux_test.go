package storage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// mappedRSS returns the bytes of the store's file mapping that are in the
// process's resident set, from the mapping's entry in /proc/self/smaps.
// It skips the test where the kernel does not show that file.
func mappedRSS(t *testing.T, s *Store) int64 {
	t.Helper()
	var start uintptr
	if err := s.db.View(func(*bolt.Tx) error { start = s.db.Info().Data; return nil }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /proc/self/smaps")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := strconv.FormatUint(uint64(start), 16) + "-"
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !found {
			found = strings.HasPrefix(line, want)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			return kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no mapping at %#x with an Rss line in /proc/self/smaps", start)
	return 0
}

// readAll reads every key and value of every bucket in one transaction.
func readAll(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if len(k) == 0 {
					return errors.New("empty key")
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wantReleased fails the test if more than a sixteenth of the store's
// mapping of used bytes is resident after what.
func wantReleased(t *testing.T, s *Store, used int64, what string) {
	t.Helper()
	if got := mappedRSS(t, s); got > used/16 {
		t.Errorf("after %s %d of %d bytes of the mapping are resident; want at most %d",
			what, got, used, used/16)
	}
}

// Opening a writable store rebuilds bbolt's free list, which reads every
// page of the file through its mapping; Check reads them all again, and a
// walk over the tasks reads as many pages as it reads records. Each must
// leave those pages out of the process's resident set, or a large store
// shows as that much more memory for the life of the process.
func TestStore_MappedPagesNotResident(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookq.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Tens of MB, so that the few pages a read maps at once (the kernel
	// maps neighbours of a faulting page, up to a huge page where the
	// file's page cache has them) stay small beside the file.
	const n, batch = 20000, 1000
	if n < releaseEvery {
		t.Fatalf("%d tasks: a walk over them would not give pages back", n)
	}
	args := json.RawMessage(`{"pad":"` + strings.Repeat("x", 1500) + `"}`)
	for i := 0; i < n; i += batch {
		tasks := make([]*Task, batch)
		for j := range tasks {
			tasks[j] = newTask(i + j)
			tasks[j].Args = args
		}
		insert(t, s, tasks...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var used int64
	if err := s.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	afterOpen := mappedRSS(t, s)

	// The measure sees pages that are read: reading every record maps
	// most of the file again.
	readAll(t, s)
	if got := mappedRSS(t, s); got < used/2 {
		t.Fatalf("after reading every record %d of %d bytes of the mapping are resident; "+
			"want at least half: the measure does not see the pages read", got, used)
	}
	if afterOpen > used/16 {
		t.Errorf("after Open %d of %d bytes of the mapping are resident; want at most %d",
			afterOpen, used, used/16)
	}

	// Check reads every page too, after Open gave them back: the records
	// read as they were.
	checkInvariants(t, s)
	wantReleased(t, s, used, "Check")

	// A listing that matches nothing reads every record in one read
	// transaction.
	err = s.View(func(tx *Tx) error {
		out, err := tx.List(ListOptions{Limit: 20, Match: func(*Task) bool { return false }})
		if len(out) != 0 {
			t.Errorf("List matched %d tasks", len(out))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantReleased(t, s, used, "a listing of every record")

	// A sweep that finds nothing to delete reads them in an update.
	err = s.Update(context.Background(), func(tx *Tx) error {
		deleted, _, done, err := tx.DeleteFinished(time.Now(), nil, batch, n+1)
		if deleted != 0 || !done {
			t.Errorf("DeleteFinished deleted %d, done %v; want 0, true", deleted, done)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantReleased(t, s, used, "a sweep over every record")
}
