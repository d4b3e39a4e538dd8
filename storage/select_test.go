package storage

import (
	"context"
	"testing"
	"time"
)

func TestTx_Select(t *testing.T) {
	s, _ := openTest(t)
	var tasks []*Task
	for i := range 10 {
		task := newTask(i)
		if i%2 == 1 {
			task.State = Failed
			task.NextAttemptAt = nil
		}
		tasks = append(tasks, task)
	}
	insert(t, s, tasks...)

	// Batches of two odd tasks, resuming where each stopped, up to the
	// seventh task.
	var got []ID
	var after *ID
	for batches := 0; ; batches++ {
		if batches > 10 {
			t.Fatal("Select does not end")
		}
		var found []*Task
		err := s.View(func(tx *Tx) error {
			var err error
			found, after, err = tx.Select(SelectOptions{After: after, Until: &tasks[6].ID,
				States: []State{Failed}, Max: 2})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range found {
			got = append(got, task.ID)
		}
		if after == nil {
			break
		}
	}
	want := []ID{tasks[1].ID, tasks[3].ID, tasks[5].ID}
	if len(got) != len(want) {
		t.Fatalf("Select found %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Select found %v; want %v", got, want)
		}
	}

	// MaxScan stops a walk early, at the last record read.
	err := s.View(func(tx *Tx) error {
		found, next, err := tx.Select(SelectOptions{MaxScan: 3, States: []State{Failed}})
		if err != nil || len(found) != 1 || next == nil || *next != tasks[2].ID {
			t.Errorf("Select with MaxScan 3 = %d tasks, next %v, %v; want 1 and %s",
				len(found), next, err, tasks[2].ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTx_DeleteFinishedStates(t *testing.T) {
	s, _ := openTest(t)
	fin := testNow.Add(-time.Hour)
	var tasks []*Task
	for i, st := range []State{Succeeded, Failed, Cancelled, Failed} {
		task := newTask(i)
		task.State, task.NextAttemptAt, task.FinishedAt = st, nil, &fin
		tasks = append(tasks, task)
	}
	insert(t, s, tasks...)
	var n int
	err := s.Update(context.Background(), func(tx *Tx) error {
		var err error
		n, _, _, err = tx.DeleteFinished(testNow.Add(time.Hour), nil, 100, 100, Failed)
		return err
	})
	if err != nil || n != 2 {
		t.Fatalf("DeleteFinished(failed) = %d, %v; want 2", n, err)
	}
	get(t, s, tasks[0].ID)
	get(t, s, tasks[2].ID)
	checkInvariants(t, s)
}
