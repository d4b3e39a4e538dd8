package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Records are stored as a version byte followed by tagged fields:
// uvarint tag, uvarint length, bytes. A reader skips tags it does not know,
// so a later version can add fields without breaking older files, and a
// missing field reads as its zero value. Tags are never reused.
const recordVersion = 1

// Task record tags.
const (
	tagURL = iota + 1
	tagMethod
	tagArgs
	tagHeaders
	tagJSON
	tagProtocol
	tagMaxAttempts
	tagTimeout
	tagRunAt
	tagKey
	tagState
	tagAttempts
	tagCreatedAt
	tagFinishedAt
	tagResult
	tagError
	tagNextAttemptAt
	tagRev
	tagAttemptBase
	tagRetriedAt
)

// Attempt record tags.
const (
	tagAttN = iota + 1
	tagAttStartedAt
	tagAttLatency
	tagAttStatusCode
	tagAttOutcome
	tagAttError
	tagAttBody
)

// errCorrupt reports a record that cannot be decoded.
var errCorrupt = errors.New("corrupt record")

type encoder struct{ b []byte }

func (e *encoder) bytes(tag int, v []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(tag))
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) str(tag int, v string) {
	if v == "" {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(tag))
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) int(tag int, v int64) {
	if v == 0 {
		return
	}
	var buf [binary.MaxVarintLen64]byte
	e.bytes(tag, buf[:binary.PutVarint(buf[:], v)])
}

func (e *encoder) time(tag int, t *time.Time) {
	if t == nil {
		return
	}
	var buf [binary.MaxVarintLen64]byte
	e.bytes(tag, buf[:binary.PutVarint(buf[:], t.UnixNano())])
}

func (e *encoder) json(tag int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	e.bytes(tag, b)
	return nil
}

// decoder walks the fields of a record.
type decoder struct {
	b   []byte
	tag int
	val []byte
	err error
}

func newDecoder(b []byte) (decoder, error) {
	if len(b) == 0 {
		return decoder{}, fmt.Errorf("%w: empty", errCorrupt)
	}
	if b[0] != recordVersion {
		return decoder{}, fmt.Errorf("%w: unknown record version %d", errCorrupt, b[0])
	}
	return decoder{b: b[1:]}, nil
}

// next advances to the next field and reports whether there is one.
func (d *decoder) next() bool {
	if len(d.b) == 0 || d.err != nil {
		return false
	}
	tag, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad tag", errCorrupt)
		return false
	}
	size, m := binary.Uvarint(d.b[n:])
	if m <= 0 || size > uint64(len(d.b)-n-m) {
		d.err = fmt.Errorf("%w: bad length of field %d", errCorrupt, tag)
		return false
	}
	d.tag = int(tag)
	d.val = d.b[n+m : n+m+int(size)]
	d.b = d.b[n+m+int(size):]
	return true
}

func (d *decoder) int() int64 {
	v, n := binary.Varint(d.val)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad integer in field %d", errCorrupt, d.tag)
	}
	return v
}

func (d *decoder) time() time.Time {
	return time.Unix(0, d.int()).UTC()
}

// copyBytes returns a copy of the field's value: bbolt's memory is valid
// only inside its transaction.
func (d *decoder) copyBytes() []byte {
	return append([]byte(nil), d.val...)
}

// known returns the field's value as one of the strings in common if it is
// one of them, sparing an allocation, and as a new string otherwise.
func (d *decoder) known(common ...string) string {
	for _, c := range common {
		if string(d.val) == c {
			return c
		}
	}
	return string(d.val)
}

func (d *decoder) json(v any) {
	if err := json.Unmarshal(d.val, v); err != nil {
		d.err = fmt.Errorf("%w: field %d: %v", errCorrupt, d.tag, err)
	}
}

// encodeTask returns the record form of t, which must be a stored state.
func encodeTask(t *Task) ([]byte, error) {
	return appendTask(make([]byte, 0, taskSize(t)), t)
}

// taskSize estimates the size of the record of t.
func taskSize(t *Task) int {
	return 96 + len(t.URL) + len(t.Args) + len(t.JSON) + len(t.Result)
}

// appendTask appends the record form of t to dst.
func appendTask(dst []byte, t *Task) ([]byte, error) {
	e := encoder{b: dst}
	e.b = append(e.b, recordVersion)
	e.int(tagState, int64(t.State))
	e.int(tagRev, int64(t.Rev))
	e.str(tagURL, t.URL)
	e.str(tagMethod, t.Method)
	e.str(tagArgs, string(t.Args))
	if len(t.Headers) > 0 {
		if err := e.json(tagHeaders, t.Headers); err != nil {
			return nil, fmt.Errorf("encode headers: %w", err)
		}
	}
	e.str(tagJSON, string(t.JSON))
	e.str(tagProtocol, t.Protocol)
	e.int(tagMaxAttempts, int64(t.MaxAttempts))
	e.int(tagTimeout, int64(t.Timeout))
	e.time(tagRunAt, t.RunAt)
	if t.Key != nil {
		e.bytes(tagKey, []byte(*t.Key))
	}
	e.int(tagAttempts, int64(t.Attempts))
	e.time(tagCreatedAt, &t.CreatedAt)
	e.time(tagFinishedAt, t.FinishedAt)
	e.str(tagResult, string(t.Result))
	if t.Error != nil {
		if err := e.json(tagError, t.Error); err != nil {
			return nil, fmt.Errorf("encode error: %w", err)
		}
	}
	e.time(tagNextAttemptAt, t.NextAttemptAt)
	e.int(tagAttemptBase, int64(t.AttemptBase))
	e.time(tagRetriedAt, t.RetriedAt)
	return e.b, nil
}

// decodedTask holds a decoded task with room for its optional times, so
// that a decode allocates them with the task rather than one at a time.
type decodedTask struct {
	task  Task
	times [4]time.Time
}

// Methods and protocols most tasks use: decoding shares these strings.
var (
	commonMethods   = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
	commonProtocols = []string{"celery", "plain"}
)

// decodeTask reads a task record stored under id.
func decodeTask(id ID, b []byte) (*Task, error) {
	d, err := newDecoder(b)
	if err != nil {
		return nil, fmt.Errorf("decode task %s: %w", id, err)
	}
	box := &decodedTask{}
	t := &box.task
	t.ID = id
	for d.next() {
		switch d.tag {
		case tagURL:
			t.URL = string(d.val)
		case tagMethod:
			t.Method = d.known(commonMethods...)
		case tagArgs:
			t.Args = d.copyBytes()
		case tagHeaders:
			d.json(&t.Headers)
		case tagJSON:
			t.JSON = d.copyBytes()
		case tagProtocol:
			t.Protocol = d.known(commonProtocols...)
		case tagMaxAttempts:
			t.MaxAttempts = int(d.int())
		case tagTimeout:
			t.Timeout = Duration(d.int())
		case tagRunAt:
			box.times[0] = d.time()
			t.RunAt = &box.times[0]
		case tagKey:
			k := string(d.val)
			t.Key = &k
		case tagState:
			t.State = State(d.int())
		case tagAttempts:
			t.Attempts = int(d.int())
		case tagCreatedAt:
			t.CreatedAt = d.time()
		case tagFinishedAt:
			box.times[1] = d.time()
			t.FinishedAt = &box.times[1]
		case tagResult:
			t.Result = d.copyBytes()
		case tagError:
			t.Error = new(Error)
			d.json(t.Error)
		case tagNextAttemptAt:
			box.times[2] = d.time()
			t.NextAttemptAt = &box.times[2]
		case tagRev:
			t.Rev = uint32(d.int())
		case tagAttemptBase:
			t.AttemptBase = int(d.int())
		case tagRetriedAt:
			box.times[3] = d.time()
			t.RetriedAt = &box.times[3]
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode task %s: %w", id, d.err)
	}
	if !t.State.Valid() || t.State == Active {
		return nil, fmt.Errorf("decode task %s: %w: stored state %d", id, errCorrupt, t.State)
	}
	return t, nil
}

// decodeState reads only the state of a task record. The state is the first
// field written, so this is cheap for filters over many records.
func decodeState(b []byte) (State, error) {
	d, err := newDecoder(b)
	if err != nil {
		return 0, err
	}
	for d.next() {
		if d.tag == tagState {
			s := State(d.int())
			return s, d.err
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return 0, fmt.Errorf("%w: no state", errCorrupt)
}

// decodeRev reads only the revision of a task record. A record whose
// revision is zero has no such field, so it may read to the end; fields are
// skipped without being decoded.
func decodeRev(b []byte) (uint32, error) {
	d, err := newDecoder(b)
	if err != nil {
		return 0, err
	}
	for d.next() {
		if d.tag == tagRev {
			rev := uint32(d.int())
			return rev, d.err
		}
	}
	return 0, d.err
}

func encodeAttempt(a *Attempt) ([]byte, error) {
	return appendAttempt(make([]byte, 0, attemptSize(a)), a)
}

// attemptSize estimates the size of the record of a.
func attemptSize(a *Attempt) int { return 48 + len(a.Outcome) + len(a.Body) }

// appendAttempt appends the record form of a to dst.
func appendAttempt(dst []byte, a *Attempt) ([]byte, error) {
	e := encoder{b: dst}
	e.b = append(e.b, recordVersion)
	e.int(tagAttN, int64(a.N))
	e.time(tagAttStartedAt, &a.StartedAt)
	e.int(tagAttLatency, int64(a.Latency))
	e.int(tagAttStatusCode, int64(a.StatusCode))
	e.str(tagAttOutcome, a.Outcome)
	if a.Error != nil {
		if err := e.json(tagAttError, a.Error); err != nil {
			return nil, fmt.Errorf("encode attempt error: %w", err)
		}
	}
	e.str(tagAttBody, a.Body)
	return e.b, nil
}

func decodeAttempt(b []byte) (*Attempt, error) {
	d, err := newDecoder(b)
	if err != nil {
		return nil, fmt.Errorf("decode attempt: %w", err)
	}
	a := &Attempt{}
	for d.next() {
		switch d.tag {
		case tagAttN:
			a.N = int(d.int())
		case tagAttStartedAt:
			a.StartedAt = d.time()
		case tagAttLatency:
			a.Latency = Duration(d.int())
		case tagAttStatusCode:
			a.StatusCode = int(d.int())
		case tagAttOutcome:
			a.Outcome = string(d.val)
		case tagAttError:
			a.Error = new(Error)
			d.json(a.Error)
		case tagAttBody:
			a.Body = string(d.val)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode attempt: %w", d.err)
	}
	return a, nil
}
