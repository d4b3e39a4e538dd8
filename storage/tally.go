package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Tally counts what happened to tasks in one second: attempts and how
// they ended. The store keeps one tally per second for TallyKeep, written
// in the same transactions as the outcomes they count, so that recent
// throughput and error rates can be read from the file alone, with or
// without a running server.
type Tally struct {
	// Attempts is the number of attempts whose outcome was stored.
	Attempts int64
	// FailedAttempts is the number of those that did not succeed: the
	// task failed with it or will be retried.
	FailedAttempts int64
	// Succeeded is the number of tasks that succeeded.
	Succeeded int64
	// Failed is the number of tasks that failed for good.
	Failed int64
}

// Add returns the sum of two tallies.
func (a Tally) Add(b Tally) Tally {
	return Tally{
		Attempts:       a.Attempts + b.Attempts,
		FailedAttempts: a.FailedAttempts + b.FailedAttempts,
		Succeeded:      a.Succeeded + b.Succeeded,
		Failed:         a.Failed + b.Failed,
	}
}

// TallyKeep is how long the per-second tallies are kept. Older ones are
// deleted as new seconds are written.
const TallyKeep = time.Hour

// Tally record tags.
const (
	tagTallyAttempts = iota + 1
	tagTallyFailedAttempts
	tagTallySucceeded
	tagTallyFailed
)

// secondTally is a tally of the transaction not yet written.
type secondTally struct {
	sec int64 // Unix seconds
	t   Tally
}

// tallyKey returns the key of the tally of Unix second sec.
func tallyKey(sec int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(max(sec, 0)))
}

// AddTally adds n to the tally of the second of at. The tallies of a
// transaction are written once, when it commits: one small write per
// second touched, however many outcomes it counts.
func (t *Tx) AddTally(at time.Time, n Tally) {
	t.writes++
	sec := at.Unix()
	for i := range t.tallies {
		if t.tallies[i].sec == sec {
			t.tallies[i].t = t.tallies[i].t.Add(n)
			return
		}
	}
	t.tallies = append(t.tallies, secondTally{sec: sec, t: n})
}

// flushTallies writes the transaction's tallies. Writing a second not yet
// stored also deletes the tallies older than TallyKeep, and any from more
// than TallyKeep ahead (left by a clock that was set back).
func (t *Tx) flushTallies() error {
	for _, st := range t.tallies {
		k := tallyKey(st.sec)
		cur, fresh := Tally{}, true
		if v := t.bucket(bTallies).Get(k); v != nil {
			var err error
			if cur, err = decodeTally(v); err != nil {
				return fmt.Errorf("update tally %d: %w", st.sec, err)
			}
			fresh = false
		}
		v := t.arena.keep(appendTally(t.arena.next(24), cur.Add(st.t)))
		if err := t.bucket(bTallies).Put(k, v); err != nil {
			return fmt.Errorf("update tally %d: %w", st.sec, err)
		}
		if fresh {
			if err := t.pruneTallies(st.sec); err != nil {
				return err
			}
		}
	}
	t.tallies = t.tallies[:0]
	return nil
}

// pruneTallies deletes the tallies more than TallyKeep away from second now.
func (t *Tx) pruneTallies(now int64) error {
	keep := int64(TallyKeep / time.Second)
	var old [][]byte
	c := t.bucket(bTallies).Cursor()
	for k, _ := c.First(); k != nil && string(k) < string(tallyKey(now-keep)); k, _ = c.Next() {
		old = append(old, k)
	}
	for k, _ := c.Seek(tallyKey(now + keep + 1)); k != nil; k, _ = c.Next() {
		old = append(old, k)
	}
	for _, k := range old {
		if err := t.bucket(bTallies).Delete(k); err != nil {
			return fmt.Errorf("prune tallies: %w", err)
		}
	}
	return nil
}

// Tallies returns the sum of the tallies of the seconds from from to to,
// both included.
func (t *Tx) Tallies(from, to time.Time) (Tally, error) {
	var sum Tally
	if t.bucket(bTallies) == nil {
		return sum, nil // a file from before tallies, opened read-only
	}
	last := tallyKey(to.Unix())
	c := t.bucket(bTallies).Cursor()
	for k, v := c.Seek(tallyKey(from.Unix())); k != nil && string(k) <= string(last); k, v = c.Next() {
		n, err := decodeTally(v)
		if err != nil {
			return Tally{}, fmt.Errorf("read tally %x: %w", k, err)
		}
		sum = sum.Add(n)
	}
	for _, st := range t.tallies {
		if st.sec >= from.Unix() && st.sec <= to.Unix() {
			sum = sum.Add(st.t)
		}
	}
	return sum, nil
}

func encodeTally(n Tally) []byte { return appendTally(make([]byte, 0, 24), n) }

func appendTally(dst []byte, n Tally) []byte {
	e := encoder{b: dst}
	e.b = append(e.b, recordVersion)
	e.int(tagTallyAttempts, n.Attempts)
	e.int(tagTallyFailedAttempts, n.FailedAttempts)
	e.int(tagTallySucceeded, n.Succeeded)
	e.int(tagTallyFailed, n.Failed)
	return e.b
}

func decodeTally(b []byte) (Tally, error) {
	d, err := newDecoder(b)
	if err != nil {
		return Tally{}, err
	}
	var n Tally
	for d.next() {
		switch d.tag {
		case tagTallyAttempts:
			n.Attempts = d.int()
		case tagTallyFailedAttempts:
			n.FailedAttempts = d.int()
		case tagTallySucceeded:
			n.Succeeded = d.int()
		case tagTallyFailed:
			n.Failed = d.int()
		}
	}
	return n, d.err
}

// checkTallies returns the problems of the stored tallies: keys that are
// not seconds, records that do not decode, counts that are negative or
// more failed attempts than attempts.
func (t *Tx) checkTallies() []error {
	if t.bucket(bTallies) == nil {
		return nil
	}
	var problems []error
	c := t.bucket(bTallies).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			problems = append(problems, fmt.Errorf("tally key of %d bytes", len(k)))
			continue
		}
		n, err := decodeTally(v)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("tally %d: %w", binary.BigEndian.Uint64(k), err))
		case n.Attempts < 0 || n.FailedAttempts < 0 || n.Succeeded < 0 || n.Failed < 0 ||
			n.FailedAttempts > n.Attempts || n.Succeeded+n.Failed > n.Attempts:
			problems = append(problems, fmt.Errorf("tally %d is inconsistent: %+v",
				binary.BigEndian.Uint64(k), n))
		}
	}
	return problems
}
