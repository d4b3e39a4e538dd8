package storage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hookq/hookq/internal/redact"
)

// ID identifies a task. It is a ULID, so IDs sort by creation time; its text
// form is the 26-character Crockford base32 string.
type ID = ulid.ULID

// ParseID parses the text form of a task ID.
func ParseID(s string) (ID, error) {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return ID{}, fmt.Errorf("parse task id %q: %w", s, err)
	}
	return id, nil
}

// State is where a task is in its life. The zero value is not a valid state.
type State uint8

// The states of a task. Succeeded, Failed and Cancelled are final.
const (
	Scheduled State = iota + 1 // waiting for its run time (first attempt)
	Pending                    // ready to run now
	Active                     // an attempt is in flight (never stored on disk)
	Retrying                   // an attempt failed; waiting for the next
	Succeeded                  // done, result stored
	Failed                     // gave up: permanent error or attempts exhausted
	Cancelled                  // cancelled by a user before it finished
)

// States lists every state in lifecycle order.
var States = []State{Scheduled, Pending, Active, Retrying, Succeeded, Failed, Cancelled}

var stateNames = [...]string{
	Scheduled: "scheduled",
	Pending:   "pending",
	Active:    "active",
	Retrying:  "retrying",
	Succeeded: "succeeded",
	Failed:    "failed",
	Cancelled: "cancelled",
}

// String returns the state's name as used in JSON and on the command line.
func (s State) String() string {
	if s >= Scheduled && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Final reports whether no further attempt will be made unless a user
// retries the task.
func (s State) Final() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return s >= Scheduled && s <= Cancelled }

// ParseState parses a state name.
func ParseState(name string) (State, error) {
	for _, s := range States {
		if stateNames[s] == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want one of scheduled, pending, active, "+
		"retrying, succeeded, failed, cancelled)", name)
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("marshal state: invalid state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string such as "15s".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Error describes why a task or an attempt failed.
type Error struct {
	// Kind is one of "remote", "invalid_response", "http", "transport",
	// "timeout", "refused", "too_large" (or "cancelled" for an attempt that
	// a user aborted).
	Kind string `json:"kind"`
	// Message says what happened, in words.
	Message string `json:"message"`
	// StatusCode is the HTTP status of the reply, or 0 when none came.
	StatusCode int `json:"status_code,omitempty"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("%s: %s (status %d)", e.Kind, e.Message, e.StatusCode)
	}
	return e.Kind + ": " + e.Message
}

// Task is one HTTP call to make, with its retry policy and, once final, its
// outcome. Its JSON form is the public task object of hookq's API.
type Task struct {
	URL         string            `json:"url"`
	Method      string            `json:"method"`
	Args        json.RawMessage   `json:"args"`    // a JSON object; {} when none
	Headers     map[string]string `json:"headers"` // user headers; never nil in JSON
	JSON        json.RawMessage   `json:"json"`    // JSON body, or null
	Protocol    string            `json:"protocol"`
	MaxAttempts int               `json:"max_attempts"`
	Timeout     Duration          `json:"timeout"`
	RunAt       *time.Time        `json:"run_at"` // requested first run time, or null
	Key         *string           `json:"key"`    // idempotency key, or null

	ID         ID              `json:"id"`
	State      State           `json:"state"`
	Attempts   int             `json:"attempts"`
	CreatedAt  time.Time       `json:"created_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Result     json.RawMessage `json:"result"` // the endpoint's retval; null until succeeded
	Error      *Error          `json:"error"`

	// RetriedAt is when a user last retried the task, or nil.
	RetriedAt *time.Time `json:"retried_at,omitempty"`

	// NextAttemptAt is when the next attempt may start, for tasks that are
	// not final. It is the task's position in the schedule index.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`

	// Rev counts the writes of the task's record. A worker remembers it when
	// it leases the task and its completion applies only if it is unchanged,
	// so an outcome never overwrites a cancel or a manual retry.
	Rev uint32 `json:"-"`

	// Existing is set on a task that an enqueue returned because its
	// idempotency key matched, rather than stored anew. It is not stored.
	Existing bool `json:"-"`

	// AttemptBase is the attempt count when a user last retried the task:
	// attempts after it are counted against MaxAttempts afresh.
	AttemptBase int `json:"-"`
}

// MarshalJSON writes the task's public JSON form, with empty args and
// headers as {} rather than null, and the URL's userinfo (which often holds
// a token or password) replaced by "xxxxx".
func (t Task) MarshalJSON() ([]byte, error) {
	type plain Task // no methods: avoids recursion
	p := plain(t)
	p.URL = RedactURL(p.URL)
	if p.Headers == nil {
		p.Headers = map[string]string{}
	}
	if len(p.Args) == 0 {
		p.Args = json.RawMessage("{}")
	}
	return json.Marshal(p)
}

// RedactURL returns raw with its userinfo, if any, replaced by "xxxxx", for
// output and logs. The stored URL keeps it, for dispatch. A URL that does
// not parse has its userinfo hidden all the same.
func RedactURL(raw string) string { return redact.URL(raw) }

// Clone returns a copy of t that shares no mutable state with it.
func (t *Task) Clone() *Task {
	c := new(Task)
	t.CloneTo(c)
	return c
}

// CloneTo sets *c to a copy of t that shares no mutable state with it, as
// Clone returns, for a caller that has room for the copy.
func (t *Task) CloneTo(c *Task) {
	*c = *t
	if t.Headers != nil {
		c.Headers = make(map[string]string, len(t.Headers))
		for k, v := range t.Headers {
			c.Headers[k] = v
		}
	}
	if t.Error != nil {
		e := *t.Error
		c.Error = &e
	}
}

// Attempt records one try of a task's HTTP call and its outcome.
type Attempt struct {
	N          int       `json:"n"` // 1 for the first attempt
	StartedAt  time.Time `json:"started_at"`
	Latency    Duration  `json:"latency"`
	StatusCode int       `json:"status_code,omitempty"`
	// Outcome is "succeeded", "failed" or "retry".
	Outcome string `json:"outcome"`
	Error   *Error `json:"error,omitempty"`
	// Body is a bounded prefix (1 KiB) of the reply's body.
	Body string `json:"body,omitempty"`
}
