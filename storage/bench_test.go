package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookq/hookq/internal/cputime"
)

// openBench opens a store in a temporary directory for a benchmark.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "hookq.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// insertBench inserts tasks in commits of 1,000.
func insertBench(b *testing.B, s *Store, tasks []*Task) {
	b.Helper()
	for i := 0; i < len(tasks); i += 1000 {
		err := s.Update(context.Background(), func(tx *Tx) error {
			for _, task := range tasks[i:min(i+1000, len(tasks))] {
				if _, _, err := tx.Insert(task); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStore_InsertBatch measures a batch enqueue's storage part:
// 1,000 new tasks per commit, per task.
func BenchmarkStore_InsertBatch(b *testing.B) {
	s := openBench(b)
	tasks := make([]*Task, b.N)
	for i := range tasks {
		tasks[i] = newTask(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	insertBench(b, s, tasks)
	cpu.Report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkStore_DueOne measures one scan of the scheduler under load: a
// read transaction that resumes at the last task leased and reads the one
// due task after it, in a store of 10,000 due tasks.
func BenchmarkStore_DueOne(b *testing.B) {
	s := openBench(b)
	tasks := make([]*Task, 10000)
	from := make([][]byte, len(tasks))
	for i := range tasks {
		tasks[i] = newTask(i)
		from[i] = ScheduleKey(*tasks[i].NextAttemptAt, tasks[i].ID)
	}
	insertBench(b, s, tasks)
	now := testNow.Add(time.Duration(len(tasks)) * time.Second)
	skip := func(ID) bool { return false }
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		err := s.View(func(tx *Tx) error {
			due, _, err := tx.Due(now, DueOptions{Max: 1, Skip: skip, From: from[i%len(from)]})
			if err == nil && len(due) != 1 {
				b.Fatalf("due %d tasks; want 1", len(due))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkStore_View measures an empty read transaction.
func BenchmarkStore_View(b *testing.B) {
	s := openBench(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.View(func(*Tx) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
