package storage

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// tallies reads the sum of the tallies from from to to.
func tallies(t *testing.T, s *Store, from, to time.Time) Tally {
	t.Helper()
	var got Tally
	if err := s.View(func(tx *Tx) error {
		var err error
		got, err = tx.Tallies(from, to)
		return err
	}); err != nil {
		t.Fatalf("tallies: %v", err)
	}
	return got
}

// countTallies returns the number of stored per-second tallies.
func countTallies(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	s.View(func(tx *Tx) error {
		return tx.bucket(bTallies).ForEach(func(_, _ []byte) error { n++; return nil })
	})
	return n
}

func addTally(t *testing.T, s *Store, at time.Time, n Tally) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx *Tx) error {
		tx.AddTally(at, n)
		return nil
	}); err != nil {
		t.Fatalf("add tally: %v", err)
	}
}

func TestStore_Tallies(t *testing.T) {
	s, _ := openTest(t)
	one := Tally{Attempts: 1, Succeeded: 1}
	retry := Tally{Attempts: 1, FailedAttempts: 1}

	t.Run("SumsSecondsInTheWindow", func(t *testing.T) {
		// Several outcomes of one transaction, in two seconds; another
		// transaction adds to the same second.
		err := s.Update(context.Background(), func(tx *Tx) error {
			tx.AddTally(testNow, one)
			tx.AddTally(testNow.Add(300*time.Millisecond), retry)
			tx.AddTally(testNow.Add(time.Second), one)
			// A transaction reads its own tallies before they are written.
			if got, _ := tx.Tallies(testNow, testNow); got != (Tally{2, 1, 1, 0}) {
				t.Errorf("tallies inside the transaction = %+v", got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		addTally(t, s, testNow.Add(999*time.Millisecond), Tally{Attempts: 1, FailedAttempts: 1, Failed: 1})
		if got, want := tallies(t, s, testNow, testNow), (Tally{3, 2, 1, 1}); got != want {
			t.Errorf("tallies of one second = %+v; want %+v", got, want)
		}
		if got, want := tallies(t, s, testNow.Add(-time.Minute), testNow.Add(time.Minute)),
			(Tally{4, 2, 2, 1}); got != want {
			t.Errorf("tallies of the window = %+v; want %+v", got, want)
		}
		if got := tallies(t, s, testNow.Add(2*time.Second), testNow.Add(time.Minute)); got != (Tally{}) {
			t.Errorf("tallies after = %+v; want none", got)
		}
		checkInvariants(t, s)
	})

	t.Run("PrunedAfterAnHour", func(t *testing.T) {
		before := countTallies(t, s)
		if before != 2 {
			t.Fatalf("stored tallies = %d; want 2", before)
		}
		// A second within the hour keeps them; one past it deletes them.
		addTally(t, s, testNow.Add(TallyKeep), one)
		if n := countTallies(t, s); n != 3 {
			t.Errorf("tallies after a second within the hour = %d; want 3", n)
		}
		addTally(t, s, testNow.Add(TallyKeep+2*time.Second), one)
		if n := countTallies(t, s); n != 2 {
			t.Errorf("tallies after a second past the hour = %d; want 2", n)
		}
		// A clock set back drops the tallies more than an hour ahead.
		addTally(t, s, testNow, one)
		if n := countTallies(t, s); n != 2 {
			t.Errorf("tallies after the clock went back = %d; want 2", n)
		}
		checkInvariants(t, s)
	})

	t.Run("FailedUpdateAddsNothing", func(t *testing.T) {
		boom := errors.New("boom")
		before := tallies(t, s, testNow, testNow)
		err := s.Update(context.Background(), func(tx *Tx) error {
			tx.AddTally(testNow, one)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("update = %v; want boom", err)
		}
		if got := tallies(t, s, testNow, testNow); got != before {
			t.Errorf("tallies after a failed update = %+v; want %+v", got, before)
		}
	})
}

func TestStore_CheckTallies(t *testing.T) {
	s, path := openTest(t)
	addTally(t, s, testNow, Tally{Attempts: 1, Succeeded: 1})
	s.Close()

	// Break a tally behind the store's back.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTallies)
		bad := encodeTally(Tally{Attempts: 1, FailedAttempts: 2})
		if err := b.Put(tallyKey(testNow.Unix()+1), bad); err != nil {
			return err
		}
		return b.Put(tallyKey(testNow.Unix()+2), []byte{9})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var problems []error
	s.View(func(tx *Tx) error { problems = tx.Check(); return nil })
	text := ""
	for _, p := range problems {
		text += p.Error() + "\n"
	}
	if len(problems) != 2 || !strings.Contains(text, "inconsistent") || !strings.Contains(text, "version") {
		t.Errorf("Check = %q; want an inconsistent tally and a corrupt one", text)
	}
}

func TestStore_TalliesOfAnOlderFile(t *testing.T) {
	// A file written before tallies existed has no bucket for them: read
	// only, it has none; opened for writing, it gets the bucket.
	path := filepath.Join(t.TempDir(), "hookq.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketTallies) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	ro, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tallies(t, ro, testNow, testNow); got != (Tally{}) {
		t.Errorf("tallies of an older file = %+v; want none", got)
	}
	checkInvariants(t, ro)
	ro.Close()

	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addTally(t, s, testNow, Tally{Attempts: 1})
	if got := tallies(t, s, testNow, testNow); got.Attempts != 1 {
		t.Errorf("tallies after reopening for writing = %+v; want 1 attempt", got)
	}
}
