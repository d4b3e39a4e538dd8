package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Tx is a transaction on the store, handed to the functions given to
// Store.Update and Store.View. Its write methods keep the schedule index,
// the idempotency keys and the per-state counters consistent with the task
// records. A Tx is valid only inside the function it was handed to.
type Tx struct {
	tx     *bolt.Tx
	parent parent
	// buckets are the store's buckets, looked up on first use (see bucket).
	buckets [numBuckets]*bolt.Bucket
	// taskCursor reads task records for Get: one cursor per transaction
	// rather than one per read, as bbolt's Get makes.
	taskCursor *bolt.Cursor
	delta      [Cancelled + 1]int64 // counter changes, written once at commit
	writes     int                  // write calls so far, to spot a spoiled update
	read       int                  // records read by walks, see Store.noteRead

	tallies []secondTally // tally changes, written once at commit
	// arena holds the values put; nil allocates each (see arena).
	arena *arena
	// key holds a key being written. bbolt copies the keys it keeps, but
	// a key it is given escapes (it may log it), so a key built on the
	// stack would be allocated anyway.
	key [24]byte
}

// scratch returns k in t.key.
func (t *Tx) scratch(k []byte) []byte { return t.key[:copy(t.key[:], k)] }

// bucketID names one of the store's buckets in Tx.buckets.
type bucketID int

const (
	bTasks bucketID = iota
	bSchedule
	bAttempts
	bKeys
	bCounts
	bTallies // nil in a file from before tallies, opened read-only
	numBuckets
)

var bucketNames = [numBuckets][]byte{bTasks: bucketTasks, bSchedule: bucketSchedule,
	bAttempts: bucketAttempts, bKeys: bucketKeys, bCounts: bucketCounts, bTallies: bucketTallies}

// errMissingBucket reports a bucket of the store that is not in the file:
// in a database shared with its caller, the caller deleted it.
var errMissingBucket = errors.New("a bucket of the store is missing")

// missingBucket is the panic value of a lookup of a missing bucket in a
// read transaction; View and Check turn it back into errMissingBucket.
type missingBucket struct{ name []byte }

func (m missingBucket) error() error { return fmt.Errorf("%w: %s", errMissingBucket, m.name) }

// newTx returns a Tx over the store's buckets in btx. It fails if a bucket
// is missing, which in a database shared with its caller means the caller
// deleted it. A read transaction looks its buckets up when it first uses
// them, since each lookup costs allocations and a scan of the scheduler
// reads two buckets of six; a missing one then fails the read (see
// bucket).
func (s *Store) newTx(btx *bolt.Tx) (*Tx, error) {
	p, err := s.parent(btx)
	if err != nil {
		return nil, err
	}
	t := &Tx{tx: btx, parent: p}
	if !btx.Writable() {
		return t, nil
	}
	for i := range numBuckets {
		t.buckets[i] = p.Bucket(bucketNames[i])
		if t.buckets[i] == nil && i != bTallies {
			return nil, missingBucket{bucketNames[i]}.error()
		}
	}
	// Keys ascend (ULIDs, run times), so pages can be filled: the default
	// half-full split would double the file for no gain.
	t.buckets[bTasks].FillPercent = 0.95
	t.buckets[bAttempts].FillPercent = 0.95
	t.buckets[bSchedule].FillPercent = 0.9
	return t, nil
}

// bucket returns the bucket id, looking it up on first use. A missing
// bucket other than the tallies panics with missingBucket, which View and
// Check recover; in a write transaction newTx has looked them all up.
func (t *Tx) bucket(id bucketID) *bolt.Bucket {
	if b := t.buckets[id]; b != nil {
		return b
	}
	b := t.parent.Bucket(bucketNames[id])
	if b == nil && id != bTallies {
		panic(missingBucket{bucketNames[id]})
	}
	t.buckets[id] = b
	return b
}

// ScheduleKey returns the schedule index key of a task due at at: its run
// time in big-endian nanoseconds, then its ID, so a cursor walks tasks in
// run-time order. Keys compare as byte strings.
func ScheduleKey(at time.Time, id ID) []byte { return scheduleKey(at, id) }

func scheduleKey(at time.Time, id ID) []byte {
	k := scheduleKeyOf(at, id)
	return k[:]
}

// scheduleKeyOf is scheduleKey as an array, for keys that bbolt copies:
// it needs no allocation.
func scheduleKeyOf(at time.Time, id ID) (k [24]byte) {
	ns := at.UnixNano()
	if ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(k[:8], uint64(ns))
	copy(k[8:], id[:])
	return k
}

func attemptKey(id ID, n int) (k [20]byte) {
	copy(k[:], id[:])
	binary.BigEndian.PutUint32(k[16:], uint32(n))
	return k
}

// encodeTask returns the record of task in the transaction's arena.
func (t *Tx) encodeTask(task *Task) ([]byte, error) {
	rec, err := appendTask(t.arena.next(taskSize(task)), task)
	if err != nil {
		return nil, err
	}
	return t.arena.keep(rec), nil
}

// Get returns the task stored under id, or ErrNotFound.
func (t *Tx) Get(id ID) (*Task, error) {
	v := t.record(id)
	if v == nil {
		return nil, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	return decodeTask(id, v)
}

// Rev returns the revision of the task stored under id (see Task.Rev), or
// ErrNotFound. It reads only that field of the record: a caller holding
// the task as read earlier can tell from it whether the task changed since,
// and if not pass that copy to Replace as prev without reading it again.
func (t *Tx) Rev(id ID) (uint32, error) {
	v := t.record(id)
	if v == nil {
		return 0, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	rev, err := decodeRev(v)
	if err != nil {
		return 0, fmt.Errorf("decode task %s: %w", id, err)
	}
	return rev, nil
}

// record returns the stored record of task id, or nil.
func (t *Tx) record(id ID) []byte {
	if t.taskCursor == nil {
		t.taskCursor = t.bucket(bTasks).Cursor()
	}
	// Seek repositions the cursor from the root, so writes since its last
	// use do not matter.
	k, v := t.taskCursor.Seek(id[:])
	if string(k) != string(id[:]) {
		return nil
	}
	return v
}

// checkStored returns an error if task cannot be stored as it is.
func checkStored(task *Task) error {
	switch {
	case !task.State.Valid() || task.State == Active:
		return fmt.Errorf("task %s: state %s cannot be stored", task.ID, task.State)
	case task.State.Final() && task.NextAttemptAt != nil:
		return fmt.Errorf("task %s: final task has a next attempt time", task.ID)
	case !task.State.Final() && task.NextAttemptAt == nil:
		return fmt.Errorf("task %s: %s task has no next attempt time", task.ID, task.State)
	}
	return nil
}

// Insert stores a new task. If the task has an idempotency key that an
// existing task holds, nothing is written and Insert returns that task with
// dup set. The task's ID must be new: Insert does not look for it (a search
// per insert costs a tenth of a batch enqueue), and IDs made by the queue
// are unique.
func (t *Tx) Insert(task *Task) (existing *Task, dup bool, err error) {
	if err := checkStored(task); err != nil {
		return nil, false, fmt.Errorf("insert: %w", err)
	}
	if task.Key != nil {
		if v := t.bucket(bKeys).Get([]byte(*task.Key)); v != nil {
			if prev, err := t.Get(ID(v)); err == nil {
				return prev, true, nil
			} else if !errors.Is(err, ErrNotFound) {
				return nil, false, fmt.Errorf("insert: %w", err)
			}
		}
	}
	rec, err := t.encodeTask(task)
	if err != nil {
		return nil, false, fmt.Errorf("insert %s: %w", task.ID, err)
	}

	// Checks are done; write the record, its index entries and counters.
	t.writes++
	if err := t.bucket(bTasks).Put(task.ID[:], rec); err != nil {
		return nil, false, fmt.Errorf("insert %s: %w", task.ID, err)
	}
	if err := t.index(nil, task); err != nil {
		return nil, false, fmt.Errorf("insert %s: %w", task.ID, err)
	}
	return nil, false, nil
}

// Replace stores next in place of prev, the task as stored: as this
// transaction read it, or a copy read before whose revision Rev says is
// still the stored one. It increments the record's revision. Both must
// have the same ID.
func (t *Tx) Replace(prev, next *Task) error {
	if prev.ID != next.ID {
		return fmt.Errorf("replace %s: ids differ (%s)", prev.ID, next.ID)
	}
	if err := checkStored(next); err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	next.Rev = prev.Rev + 1
	rec, err := t.encodeTask(next)
	if err != nil {
		return fmt.Errorf("replace %s: %w", next.ID, err)
	}
	t.writes++
	if err := t.bucket(bTasks).Put(next.ID[:], rec); err != nil {
		return fmt.Errorf("replace %s: %w", next.ID, err)
	}
	if err := t.index(prev, next); err != nil {
		return fmt.Errorf("replace %s: %w", next.ID, err)
	}
	return nil
}

// Delete removes a task with its attempts, index entries and key.
func (t *Tx) Delete(task *Task) error {
	t.writes++
	if err := t.bucket(bTasks).Delete(task.ID[:]); err != nil {
		return fmt.Errorf("delete %s: %w", task.ID, err)
	}
	if err := t.index(task, nil); err != nil {
		return fmt.Errorf("delete %s: %w", task.ID, err)
	}
	c := t.bucket(bAttempts).Cursor()
	for k, _ := c.Seek(task.ID[:]); k != nil && ID(k[:16]) == task.ID; k, _ = c.Seek(task.ID[:]) {
		if err := t.bucket(bAttempts).Delete(k); err != nil {
			return fmt.Errorf("delete %s attempts: %w", task.ID, err)
		}
	}
	return nil
}

// index moves a task's schedule entry, idempotency key and counters from
// what prev needed to what next needs. A nil prev is a new task; a nil next
// a deleted one.
func (t *Tx) index(prev, next *Task) error {
	// Schedule entry: present exactly while the task is not final.
	var oldKey, newKey [24]byte
	hadKey := prev != nil && prev.NextAttemptAt != nil
	hasKey := next != nil && next.NextAttemptAt != nil
	if hadKey {
		oldKey = scheduleKeyOf(*prev.NextAttemptAt, prev.ID)
	}
	if hasKey {
		newKey = scheduleKeyOf(*next.NextAttemptAt, next.ID)
	}
	if hadKey != hasKey || oldKey != newKey {
		if hadKey {
			if err := t.bucket(bSchedule).Delete(t.scratch(oldKey[:])); err != nil {
				return fmt.Errorf("unschedule: %w", err)
			}
		}
		if hasKey {
			if err := t.bucket(bSchedule).Put(t.scratch(newKey[:]), nil); err != nil {
				return fmt.Errorf("schedule: %w", err)
			}
		}
	}

	// Idempotency key: held while the task exists and is not cancelled.
	if err := t.indexKey(prev, next); err != nil {
		return err
	}

	// Counters.
	if prev != nil {
		t.delta[prev.State]--
	}
	if next != nil {
		t.delta[next.State]++
	}
	return nil
}

func holdsKey(task *Task) bool {
	return task != nil && task.Key != nil && task.State != Cancelled
}

func (t *Tx) indexKey(prev, next *Task) error {
	switch {
	case holdsKey(prev) && !holdsKey(next):
		k := []byte(*prev.Key)
		if v := t.bucket(bKeys).Get(k); v != nil && ID(v) == prev.ID {
			if err := t.bucket(bKeys).Delete(k); err != nil {
				return fmt.Errorf("release key: %w", err)
			}
		}
	case !holdsKey(prev) && holdsKey(next):
		// A retried task takes its key back, unless another task took it
		// in the meantime: two live tasks cannot hold one key.
		k := []byte(*next.Key)
		if v := t.bucket(bKeys).Get(k); v != nil && ID(v) != next.ID {
			return fmt.Errorf("%w: key %q is held by task %s", ErrKeyHeld, *next.Key, ID(v))
		}
		if err := t.bucket(bKeys).Put(k, next.ID[:]); err != nil {
			return fmt.Errorf("claim key: %w", err)
		}
	}
	return nil
}

// flush writes the counter and tally changes of the transaction.
func (t *Tx) flush() error {
	for s, d := range t.delta {
		if d == 0 {
			continue
		}
		k := []byte{byte(s)}
		var n int64
		if v := t.bucket(bCounts).Get(k); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		n += d
		v := t.arena.keep(binary.BigEndian.AppendUint64(t.arena.next(8), uint64(n)))
		if err := t.bucket(bCounts).Put(k, v); err != nil {
			return fmt.Errorf("update counter %s: %w", State(s), err)
		}
		t.delta[s] = 0
	}
	return t.flushTallies()
}

// AddAttempt stores the record of one attempt of task id.
func (t *Tx) AddAttempt(id ID, a *Attempt) error {
	rec, err := appendAttempt(t.arena.next(attemptSize(a)), a)
	if err != nil {
		return fmt.Errorf("add attempt %s/%d: %w", id, a.N, err)
	}
	rec = t.arena.keep(rec)
	t.writes++
	k := attemptKey(id, a.N)
	if err := t.bucket(bAttempts).Put(t.scratch(k[:]), rec); err != nil {
		return fmt.Errorf("add attempt %s/%d: %w", id, a.N, err)
	}
	return nil
}

// Attempts returns the attempts of task id, oldest first.
func (t *Tx) Attempts(id ID) ([]Attempt, error) {
	var out []Attempt
	c := t.bucket(bAttempts).Cursor()
	for k, v := c.Seek(id[:]); k != nil && len(k) == 20 && ID(k[:16]) == id; k, v = c.Next() {
		a, err := decodeAttempt(v)
		if err != nil {
			return nil, fmt.Errorf("attempts of %s: %w", id, err)
		}
		out = append(out, *a)
	}
	return out, nil
}

// Counts returns the number of stored tasks in each state, read from the
// counters (no scan).
func (t *Tx) Counts() map[State]int64 {
	out := make(map[State]int64, len(States))
	for _, s := range States {
		if s == Active {
			continue
		}
		var n int64
		if v := t.bucket(bCounts).Get([]byte{byte(s)}); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		out[s] = n + t.delta[s]
	}
	return out
}
