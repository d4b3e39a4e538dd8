package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

// DueOptions select the tasks Due returns.
type DueOptions struct {
	// Max bounds the number of tasks returned.
	Max int
	// Skip, if set, passes over tasks by ID before they are read (tasks
	// already leased).
	Skip func(ID) bool
	// Accept, if set, passes over tasks for which it reports false once
	// read (tasks whose host is busy).
	Accept func(*Task) bool
	// MaxScan bounds the index entries examined, so that a long run of
	// passed-over tasks cannot make one call slow. Zero means no bound.
	MaxScan int
	// From starts the scan at this schedule key (see ScheduleKey) instead
	// of the start of the index. Nil means the start.
	From []byte
}

// Due returns due tasks (next attempt time at or before now) in run-time
// order. When it stops before opts.Max for lack of due tasks, next is the run
// time of the earliest task not yet due, or nil if there is none; when it
// stops at opts.Max or opts.MaxScan, next is nil and more may be due.
func (t *Tx) Due(now time.Time, opts DueOptions) (due []*Task, next *time.Time, err error) {
	limit := now.UnixNano()
	c := t.bucket(bSchedule).Cursor()
	scanned := 0
	var k []byte
	if opts.From != nil {
		k, _ = c.Seek(opts.From)
	} else {
		k, _ = c.First()
	}
	for ; k != nil; k, _ = c.Next() {
		if len(k) != 24 {
			return nil, nil, fmt.Errorf("due: %w: schedule key of %d bytes", errCorrupt, len(k))
		}
		at := int64(binary.BigEndian.Uint64(k))
		if at > limit {
			n := time.Unix(0, at).UTC()
			return due, &n, nil
		}
		if scanned++; opts.MaxScan > 0 && scanned > opts.MaxScan {
			return due, nil, nil
		}
		id := ID(k[8:])
		if opts.Skip != nil && opts.Skip(id) {
			continue
		}
		task, err := t.Get(id)
		if err != nil {
			return nil, nil, fmt.Errorf("due: schedule entry without task: %w", err)
		}
		if opts.Accept != nil && !opts.Accept(task) {
			continue
		}
		due = append(due, task)
		if len(due) >= opts.Max {
			return due, nil, nil
		}
	}
	return due, nil, nil
}

// ListOptions select tasks for List.
type ListOptions struct {
	// States keeps only tasks in these stored states; empty means all.
	States []State
	// Before starts the listing after this ID (exclusive), for paging;
	// nil starts at the newest task.
	Before *ID
	// Limit bounds the number of tasks returned. Zero means 100.
	Limit int
	// Match, if set, keeps only the tasks for which it reports true.
	Match func(*Task) bool
}

// List returns tasks newest first.
func (t *Tx) List(opts ListOptions) ([]*Task, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	wanted := stateSet(opts.States)

	// Walk back from the newest task, or from the one before opts.Before.
	c := t.bucket(bTasks).Cursor()
	var k, v []byte
	if opts.Before != nil {
		// Seek lands on the first key at or after Before; step back once.
		if k, _ = c.Seek(opts.Before[:]); k != nil {
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
	} else {
		k, v = c.Last()
	}

	var out []*Task
	for ; k != nil && len(out) < limit; k, v = c.Prev() {
		t.read++
		s, err := decodeState(v)
		if err != nil {
			return nil, fmt.Errorf("list: task %x: %w", k, err)
		}
		if !wanted(s) {
			continue
		}
		task, err := decodeTask(ID(k), v)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		if opts.Match != nil && !opts.Match(task) {
			continue
		}
		out = append(out, task)
	}
	return out, nil
}

// stateSet returns a test of membership in states; empty means every
// state.
func stateSet(states []State) func(State) bool {
	if len(states) == 0 {
		return func(State) bool { return true }
	}
	var set [Cancelled + 1]bool
	for _, s := range states {
		if s.Valid() {
			set[s] = true
		}
	}
	return func(s State) bool { return s.Valid() && set[s] }
}

// SelectOptions select the tasks Select returns.
type SelectOptions struct {
	// After starts the walk after this ID (exclusive); nil starts at the
	// oldest task.
	After *ID
	// Until ends the walk at this ID (inclusive); nil walks to the newest
	// task.
	Until *ID
	// States keeps only tasks in these stored states; empty means all.
	States []State
	// Match, if set, keeps only the tasks for which it reports true.
	Match func(*Task) bool
	// Max bounds the number of tasks returned. Zero means 100.
	Max int
	// MaxScan bounds the records read, so that one call stays short
	// whatever the store holds. Zero means no bound.
	MaxScan int
}

// Select returns tasks oldest first, for changes in bounded batches: it
// stops after opts.Max matches or opts.MaxScan records read, and returns
// the ID to pass as the next call's After, or nil when the walk is over.
// The caller may change the returned tasks in the same transaction: the
// walk is finished before it returns.
func (t *Tx) Select(opts SelectOptions) (tasks []*Task, next *ID, err error) {
	limit := opts.Max
	if limit <= 0 {
		limit = 100
	}
	wanted := stateSet(opts.States)
	c := t.bucket(bTasks).Cursor()
	k, v := c.First()
	if opts.After != nil {
		if k, v = c.Seek(opts.After[:]); k != nil && ID(k) == *opts.After {
			k, v = c.Next()
		}
	}
	var last ID // the last record read: the walk resumes after it
	read := 0
	for ; k != nil; k, v = c.Next() {
		id := ID(k)
		if opts.Until != nil && id.Compare(*opts.Until) > 0 {
			return tasks, nil, nil
		}
		if len(tasks) == limit || (opts.MaxScan > 0 && read == opts.MaxScan) {
			return tasks, &last, nil
		}
		read++
		t.read++
		last = id
		s, err := decodeState(v)
		if err != nil {
			return nil, nil, fmt.Errorf("select: task %s: %w", id, err)
		}
		if !wanted(s) {
			continue
		}
		task, err := decodeTask(id, v)
		if err != nil {
			return nil, nil, fmt.Errorf("select: %w", err)
		}
		if opts.Match != nil && !opts.Match(task) {
			continue
		}
		tasks = append(tasks, task)
	}
	return tasks, nil, nil
}

// Last returns the ID of the newest task, or nil when the store is empty.
func (t *Tx) Last() *ID {
	k, _ := t.bucket(bTasks).Cursor().Last()
	if k == nil {
		return nil
	}
	id := ID(k)
	return &id
}

// KeyHolder returns the task that holds the idempotency key, if any.
func (t *Tx) KeyHolder(key string) (ID, bool) {
	v := t.bucket(bKeys).Get([]byte(key))
	if len(v) != len(ID{}) {
		return ID{}, false
	}
	return ID(v), true
}

// Check verifies hookq's invariants over the whole store: every record
// decodes, the schedule index holds exactly the tasks that are not final,
// keys point at tasks that hold them, attempts belong to stored tasks, and
// the counters equal a count of the records, and the per-second tallies
// decode and are consistent. It returns every problem found.
func (t *Tx) Check() []error {
	var problems []error
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf(format, args...))
	}

	// Records and the index entries they require.
	counts := make(map[State]int64)
	wantSched := make(map[string]bool)
	c := t.bucket(bTasks).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 16 {
			add("task key of %d bytes", len(k))
			continue
		}
		task, err := decodeTask(ID(k), v)
		if err != nil {
			add("%v", err)
			continue
		}
		counts[task.State]++
		if err := checkStored(task); err != nil {
			add("%v", err)
		}
		if task.NextAttemptAt != nil {
			wantSched[string(scheduleKey(*task.NextAttemptAt, task.ID))] = true
		}
		if holdsKey(task) {
			if v := t.bucket(bKeys).Get([]byte(*task.Key)); v == nil || ID(v) != task.ID {
				add("task %s: key %q not indexed to it", task.ID, *task.Key)
			}
		}
	}

	// The schedule index against the records.
	sc := t.bucket(bSchedule).Cursor()
	for k, _ := sc.First(); k != nil; k, _ = sc.Next() {
		if !wantSched[string(k)] {
			add("schedule entry %x has no matching task", k)
		}
		delete(wantSched, string(k))
	}
	for k := range wantSched {
		add("task %s missing from the schedule index", ID([]byte(k)[8:]))
	}

	// Keys and attempts point at stored tasks.
	kc := t.bucket(bKeys).Cursor()
	for k, v := kc.First(); k != nil; k, v = kc.Next() {
		if len(v) != 16 || t.bucket(bTasks).Get(v) == nil {
			add("key %q points at no task", k)
		}
	}
	ac := t.bucket(bAttempts).Cursor()
	for k, _ := ac.First(); k != nil; k, _ = ac.Next() {
		if len(k) != 20 || t.bucket(bTasks).Get(k[:16]) == nil {
			add("attempt %x belongs to no task", k)
		}
	}

	// Counters against the count of records.
	for s, n := range t.Counts() {
		if counts[s] != n {
			add("counter %s is %d; records say %d", s, n, counts[s])
		}
	}
	return append(problems, t.checkTallies()...)
}

// DeleteFinished deletes final tasks that finished before cutoff, walking
// tasks in ID order from after (exclusive; nil means the first). It stops
// after deleting max tasks or reading scan records, and returns where to
// resume; done reports that no task created before cutoff remains to be
// looked at (a task cannot finish before it was created, so the walk ends
// at the first ID newer than cutoff). States, if given, limits the
// deletion to final tasks in those states; none means every final state.
func (t *Tx) DeleteFinished(cutoff time.Time, after *ID, max, scan int,
	states ...State) (deleted int, next *ID, done bool, err error) {
	wanted := stateSet(states)
	c := t.bucket(bTasks).Cursor()
	k, v := c.First()
	if after != nil {
		if k, v = c.Seek(after[:]); k != nil && ID(k) == *after {
			k, v = c.Next()
		}
	}
	var victims []*Task
	var last ID // the last record looked at: the walk resumes after it
	read := 0
	for ; k != nil; k, v = c.Next() {
		id := ID(k)
		if time.UnixMilli(int64(id.Time())).After(cutoff) {
			done = true
			break
		}
		if read++; read > scan || len(victims) == max {
			next = &last
			break
		}
		last = id
		t.read++
		s, err := decodeState(v)
		if err != nil {
			return 0, nil, false, fmt.Errorf("delete finished: task %s: %w", id, err)
		}
		if !s.Final() || !wanted(s) {
			continue
		}
		task, err := decodeTask(id, v)
		if err != nil {
			return 0, nil, false, fmt.Errorf("delete finished: %w", err)
		}
		if task.FinishedAt != nil && task.FinishedAt.Before(cutoff) {
			victims = append(victims, task)
		}
	}
	if k == nil {
		done = true
	}

	// Delete after the walk: deleting under a cursor moves it.
	for _, task := range victims {
		if err := t.Delete(task); err != nil {
			return 0, nil, false, err
		}
	}
	return len(victims), next, done, nil
}
