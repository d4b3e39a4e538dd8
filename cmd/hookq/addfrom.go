package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/queue"
)

// Bounds of add --from.
const (
	// maxLineBytes bounds one line of the input: more than any valid task
	// takes, even with its strings escaped.
	maxLineBytes = 8 << 20
	// chunkTasks and chunkBytes bound one chunk of tasks, stored in one
	// commit (one request to a server, within its batch limits).
	chunkTasks = 1000
	chunkBytes = 24 << 20
	// maxLineErrors is how many invalid lines are reported one by one.
	maxLineErrors = 20
)

// taskFlags are the flags of add that do not go with --from: those that
// describe one task, by the field of a task object that --from takes
// instead, and those of --wait (field empty).
var taskFlags = []struct{ flag, field string }{
	{"method", "method"}, {"json", "json"}, {"header", "headers"}, {"in", "run_at"},
	{"at", "run_at"}, {"max-attempts", "max_attempts"}, {"timeout", "timeout"},
	{"key", "key"}, {"protocol", "protocol"}, {"wait", ""}, {"wait-timeout", ""},
}

// addFrom runs "hookq add --from FILE": it reads one task object per line,
// checks them all before it stores any, then stores them in chunks of one
// commit each and prints their IDs (or, with --quiet, how many).
func (a *app) addFrom(cmd *cobra.Command, args []string, f *addFlags) error {
	if len(args) > 0 {
		return usagef("add --from takes no URL: each line of %s is a task", f.from)
	}
	for _, tf := range taskFlags {
		switch {
		case !cmd.Flags().Changed(tf.flag):
		case tf.field == "":
			return usagef(`--%s does not go with --from: pass the IDs it prints to "hookq wait"`,
				tf.flag)
		default:
			return usagef("--%s does not go with --from: set %q in each task object",
				tf.flag, tf.field)
		}
	}
	stderr := cmd.ErrOrStderr()

	// Pass 1: check every line; keep a copy of input that cannot be read
	// twice.
	in, err := a.openInput(f.from)
	if err != nil {
		return err
	}
	defer in.Close()
	total, err := checkLines(in, stderr)
	if err != nil {
		return err
	}
	if err := in.rewind(); err != nil {
		return err
	}
	if total == 0 {
		if f.quiet {
			fmt.Fprintln(cmd.OutOrStdout(), "added 0 tasks")
		}
		return nil
	}

	// Pass 2: store them chunk by chunk.
	api, err := a.connect(writeAccess, stderr)
	if err != nil {
		return err
	}
	defer api.Close()
	// The bar would garble IDs printed to the same terminal.
	bar := newProgress(stderr, "adding")
	if !f.quiet && isTerminal(cmd.OutOrStdout()) {
		bar.on = false
	}
	bar.set(0, int64(total))
	st := &addState{api: api, cmd: cmd, quiet: f.quiet, bar: bar, total: total}
	err = st.run(in)
	bar.finish()
	if st.matched > 0 && (!f.quiet || err != nil) {
		// One line for them all: a re-run of a keyed file matches every line.
		fmt.Fprintf(stderr, "hookq: %s matched a kept task by key and added nothing "+
			"(the ID printed for each is the kept task's)\n", plural(st.matched, "line"))
	}
	if err != nil {
		return err
	}
	if f.quiet {
		msg := "added " + plural(st.added, "task")
		if st.matched > 0 {
			msg += fmt.Sprintf(" (%d matched a kept task by key and were not added again)", st.matched)
		}
		fmt.Fprintln(cmd.OutOrStdout(), msg)
	}
	return nil
}

// input is the source of add --from, readable twice.
type input struct {
	r      io.Reader
	file   *os.File // the file read, or the copy of what was read
	spool  bool     // file is a temporary copy, removed by Close
	reread bool     // the second pass reads file
}

// openInput opens the file named by --from, "-" for standard input. Input
// that is not a regular file (a pipe, a terminal) is copied to a
// temporary file as it is checked.
func (a *app) openInput(name string) (*input, error) {
	in := &input{}
	if name == "-" {
		in.r = a.stdin
		if f, ok := a.stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				in.file = f
				return in, nil
			}
		}
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read tasks: %w", err)
		}
		in.r, in.file = f, f
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return in, nil
		}
	}
	spool, err := os.CreateTemp("", "hookq-add-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("read tasks: %w", err)
	}
	in.r = io.TeeReader(in.r, spool)
	in.file, in.spool = spool, true
	return in, nil
}

// rewind makes the input readable from its start again.
func (in *input) rewind() error {
	if _, err := in.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read tasks again: %w", err)
	}
	in.r = in.file
	return nil
}

// Read reads the input.
func (in *input) Read(p []byte) (int, error) { return in.r.Read(p) }

// Close closes the input, removing a temporary copy.
func (in *input) Close() error {
	if in.file == nil || in.file == os.Stdin {
		return nil
	}
	err := in.file.Close()
	if in.spool {
		os.Remove(in.file.Name())
	}
	return err
}

// utf8BOM is the byte order mark some editors write at the start of a
// UTF-8 file.
var utf8BOM = []byte("\ufeff")

// lines calls fn with each line of r that is not blank and its number,
// counting from 1, until fn fails. A byte order mark at the start of r is
// skipped.
func lines(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return usagef("line %d: longer than %d MiB", n+1, maxLineBytes>>20)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read tasks: %w", err)
	}
	return nil
}

// checkLines checks every line of r as a task and returns how many there
// are. Invalid lines are reported on stderr, the first maxLineErrors one
// by one, and make it fail with an error wrapping queue.ErrInvalid.
func checkLines(r io.Reader, stderr io.Writer) (int, error) {
	total, bad := 0, 0
	err := lines(r, func(n int, line []byte) error {
		total++
		if _, err := decodeLine(n, line); err != nil {
			bad++
			if bad <= maxLineErrors {
				fmt.Fprintf(stderr, "hookq: %s\n", printable(err.Error()))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if bad > maxLineErrors {
		fmt.Fprintf(stderr, "hookq: ... and %d more invalid lines\n", bad-maxLineErrors)
	}
	if bad > 0 {
		verb := "are"
		if bad == 1 {
			verb = "is"
		}
		return 0, fmt.Errorf("%w: %d of %s %s invalid; nothing was added", queue.ErrInvalid,
			bad, plural(total, "task"), verb)
	}
	return total, nil
}

// lineTask is a task object as add --from reads it: the input fields of
// the HTTP API's task object, and its output fields, which are ignored,
// so that the objects of "hookq ls --json" can be added again.
type lineTask struct {
	queue.Spec

	ID            json.RawMessage `json:"id"`
	State         json.RawMessage `json:"state"`
	Attempts      json.RawMessage `json:"attempts"`
	CreatedAt     json.RawMessage `json:"created_at"`
	FinishedAt    json.RawMessage `json:"finished_at"`
	Result        json.RawMessage `json:"result"`
	Error         json.RawMessage `json:"error"`
	RetriedAt     json.RawMessage `json:"retried_at"`
	NextAttemptAt json.RawMessage `json:"next_attempt_at"`
	History       json.RawMessage `json:"history"` // of "hookq show --json"
}

// decodeLine decodes and checks the task object on line n as the HTTP API
// does a request's, numbers keeping their text, but for the output fields
// of a task object, which it ignores; other unknown fields are refused.
func decodeLine(n int, line []byte) (queue.Spec, error) {
	var lt lineTask
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lt); err != nil {
		return lt.Spec, fmt.Errorf("line %d: not a task object: %v", n, httpapi.DecodeError(err))
	}
	if dec.More() {
		return lt.Spec, fmt.Errorf("line %d: more than one JSON value", n)
	}
	spec := lt.Spec
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("line %d: %s", n,
			strings.TrimPrefix(err.Error(), queue.ErrInvalid.Error()+": "))
	}
	if u, err := url.Parse(spec.URL); err == nil && u.User != nil && u.User.String() == redact.Mask {
		// An exported task whose password output hid: adding it would
		// send "xxxxx" as the credential.
		return spec, fmt.Errorf("line %d: the url's userinfo reads xxxxx, as hookq shows a hidden "+
			"password: put the real one back", n)
	}
	return spec, nil
}

// addState is the second pass of add --from.
type addState struct {
	api   taskAPI
	cmd   *cobra.Command
	quiet bool
	bar   *progress
	total int

	specs   []queue.Spec
	nums    []int // the line number of each spec
	size    int   // encoded bytes of specs
	added   int
	matched int
}

// run stores the tasks of r, chunk by chunk.
func (s *addState) run(r io.Reader) error {
	err := lines(r, func(n int, line []byte) error {
		spec, err := decodeLine(n, line)
		if err != nil {
			return err // the file changed since it was checked
		}
		enc, err := json.Marshal(spec)
		if err != nil {
			return fmt.Errorf("line %d: encode: %w", n, err)
		}
		if len(s.specs) == chunkTasks || (len(s.specs) > 0 && s.size+len(enc) > chunkBytes) {
			if err := s.flush(); err != nil {
				return err
			}
		}
		s.specs = append(s.specs, spec)
		s.nums = append(s.nums, n)
		s.size += len(enc) + 1
		return nil
	})
	if err != nil {
		return err
	}
	return s.flush()
}

// flush stores the chunk in one commit and prints its IDs.
func (s *addState) flush() error {
	if len(s.specs) == 0 {
		return nil
	}
	tasks, err := s.api.EnqueueMany(s.cmd.Context(), s.specs)
	if err != nil {
		return s.chunkFailed(err)
	}
	out := s.cmd.OutOrStdout()
	for _, t := range tasks {
		if t.Existing {
			s.matched++
		} else {
			s.added++
		}
		if !s.quiet {
			fmt.Fprintln(out, t.ID)
		}
	}
	s.bar.add(int64(len(tasks)))
	s.specs, s.nums, s.size = s.specs[:0], s.nums[:0], 0
	return nil
}

// chunkFailed returns the error of a chunk that could not be stored,
// saying which lines were added. When the server gave no reply, the
// chunk's outcome is unknown: it may have been committed all the same.
func (s *addState) chunkFailed(err error) error {
	ctx := s.cmd.Context()
	first, last := s.nums[0], s.nums[len(s.nums)-1]
	msg := fmt.Sprintf("add lines %d to %d: %s; the %s before line %d were added", first, last,
		failure(ctx, err), plural(s.added+s.matched, "task"), first)
	more := s.added+s.matched+len(s.specs) < s.total // lines after this chunk
	switch {
	case outcomeUnknown(s.api, err):
		msg += fmt.Sprintf(", lines %d to %d may or may not have been added", first, last)
		if more {
			msg += ", later ones were not"
		}
		msg += `; with a "key" on every line, adding the file again adds no task twice`
	case more:
		msg += fmt.Sprintf(", lines %d to %d and later ones were not added", first, last)
	default:
		msg += fmt.Sprintf(", lines %d to %d were not added", first, last)
	}
	return &causeError{msg: msg, cause: err}
}
