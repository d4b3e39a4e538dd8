package storage

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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

// Opening a writable store rebuilds bbolt's free list, which reads every
// page of the file through its mapping; Check reads them all again. Both
// must leave those pages out of the process's resident set, or a large
// store shows as that much more memory for the life of the process.
func TestStore_MappedPagesNotResident(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookq.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const n, batch = 40000, 1000
	for i := 0; i < n; i += batch {
		tasks := make([]*Task, batch)
		for j := range tasks {
			tasks[j] = newTask(i + j)
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
	afterRead := mappedRSS(t, s)
	if afterRead < used/2 {
		t.Fatalf("after reading every record %d of %d bytes of the mapping are resident; "+
			"want at least half: the measure does not see the pages read", afterRead, used)
	}
	if afterOpen > used/16 {
		t.Errorf("after Open %d of %d bytes of the mapping are resident; want at most %d",
			afterOpen, used, used/16)
	}

	// Check reads every page too, after Open gave them back: the records
	// read as they were.
	checkInvariants(t, s)
	afterCheck := mappedRSS(t, s)
	t.Logf("mapping of %d bytes; resident after Open %d, after reading every record %d, after Check %d",
		used, afterOpen, afterRead, afterCheck)
	if afterCheck > used/16 {
		t.Errorf("after Check %d of %d bytes of the mapping are resident; want at most %d",
			afterCheck, used, used/16)
	}

}
