package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestArena(t *testing.T) {
	t.Run("ValuesDoNotOverlap", func(t *testing.T) {
		a := &arena{}
		var vals [][]byte
		for i := range 2000 {
			want := bytes.Repeat([]byte{byte(i)}, i%300+1)
			v := a.keep(append(a.next(len(want)), want...))
			if cap(v) != len(v) {
				t.Fatalf("value %d: cap %d, len %d: room to append over the next value", i, cap(v), len(v))
			}
			vals = append(vals, v)
		}
		for i, v := range vals {
			if want := bytes.Repeat([]byte{byte(i)}, i%300+1); !bytes.Equal(v, want) {
				t.Fatalf("value %d was overwritten", i)
			}
		}
		if len(a.chunks) < 2 {
			t.Errorf("%d chunks for ~300 KB of values", len(a.chunks))
		}
	})

	t.Run("OverflowLeavesTheArena", func(t *testing.T) {
		a := &arena{}
		first := a.keep(append(a.next(8), "first"...))
		// A value that outgrows the free memory is moved by append and
		// must not claim arena memory.
		big := append(a.next(8), bytes.Repeat([]byte("x"), 2*arenaChunk)...)
		big = a.keep(big)
		after := a.keep(append(a.next(8), "after"...))
		if string(first) != "first" || string(after) != "after" || len(big) != 2*arenaChunk {
			t.Errorf("got %q, %q, %d bytes", first, after, len(big))
		}
		if &after[0] != &a.chunks[0][len("first")] {
			t.Error("the value after an overflow did not follow the first in the chunk")
		}
	})

	t.Run("ResetReusesChunks", func(t *testing.T) {
		a := &arena{}
		for range 3 * arenaChunk / 100 {
			a.keep(append(a.next(100), make([]byte, 100)...))
		}
		n := len(a.chunks)
		a.reset()
		for range 3 * arenaChunk / 100 {
			a.keep(append(a.next(100), make([]byte, 100)...))
		}
		if len(a.chunks) != n {
			t.Errorf("%d chunks after a reset; want the %d there were", len(a.chunks), n)
		}
	})

	t.Run("Nil", func(t *testing.T) {
		var a *arena
		a.reset()
		v := a.keep(append(a.next(4), "abc"...))
		if string(v) != "abc" || cap(v) != 3 {
			t.Errorf("got %q with cap %d", v, cap(v))
		}
	})
}

// TestStore_ArenaAcrossCommits writes records of many sizes over many
// commits, so that the committer's arena is reused while the earlier
// records are on disk, and reads every one back, also after a reopen.
func TestStore_ArenaAcrossCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hookq.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []*Task
	for c := range 20 {
		var batch []*Task
		for i := range 200 {
			task := newTask(c*200 + i)
			task.Args = json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("p", (c*7+i)%900)))
			batch = append(batch, task)
		}
		err := s.Update(context.Background(), func(tx *Tx) error {
			for _, task := range batch {
				if _, _, err := tx.Insert(task); err != nil {
					return err
				}
			}
			// Finish the tasks of the commit before, in this one.
			if c > 0 {
				for _, prev := range tasks[len(tasks)-200:] {
					if err := tx.AddAttempt(prev.ID, &Attempt{N: 1, StartedAt: testNow,
						Outcome: "succeeded", Body: string(prev.Args)}); err != nil {
						return err
					}
					done := prev.Clone()
					done.State, done.NextAttemptAt, done.Attempts = Succeeded, nil, 1
					done.Result, done.FinishedAt = prev.Args, &testNow
					if err := tx.Replace(prev, done); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, batch...)
	}

	verify := func(s *Store) {
		t.Helper()
		for i, want := range tasks {
			got := get(t, s, want.ID)
			if string(got.Args) != string(want.Args) || got.URL != want.URL {
				t.Fatalf("task %d: args %.40q, url %q; want %.40q, %q", i, got.Args, got.URL,
					want.Args, want.URL)
			}
			if i < len(tasks)-200 && string(got.Result) != string(want.Args) {
				t.Fatalf("task %d: result %.40q; want %.40q", i, got.Result, want.Args)
			}
		}
		checkInvariants(t, s)
	}
	verify(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	verify(s)
}
