package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

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

// taskFlags are the flags of add that describe one task, which --from
// takes from each line instead.
var taskFlags = []string{"method", "json", "header", "in", "at", "max-attempts", "timeout",
	"key", "protocol", "wait", "wait-timeout"}

// addFrom runs "hookq add --from FILE": it reads one task object per line,
// checks them all before it stores any, then stores them in chunks of one
// commit each and prints their IDs (or, with --quiet, how many).
func (a *app) addFrom(cmd *cobra.Command, args []string, f *addFlags) error {
	if len(args) > 0 {
		return usagef("add --from takes no URL: each line of %s is a task", f.from)
	}
	for _, name := range taskFlags {
		if cmd.Flags().Changed(name) {
			return usagef("--%s does not go with --from: set it in each task object", name)
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

// lines calls fn with each line of r that is not blank and its number,
// counting from 1, until fn fails.
func lines(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
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
		return 0, fmt.Errorf("%w: %d of %s are invalid; nothing was added", queue.ErrInvalid,
			bad, plural(total, "task"))
	}
	return total, nil
}

// decodeLine decodes and checks the task object on line n, as the HTTP
// API does a request's: unknown fields are refused, numbers keep their
// text.
func decodeLine(n int, line []byte) (queue.Spec, error) {
	var spec queue.Spec
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("line %d: not a task object: %v", n, err)
	}
	if dec.More() {
		return spec, fmt.Errorf("line %d: more than one JSON value", n)
	}
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("line %d: %s", n,
			strings.TrimPrefix(err.Error(), queue.ErrInvalid.Error()+": "))
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
		first, last := s.nums[0], s.nums[len(s.nums)-1]
		return &causeError{
			msg: fmt.Sprintf("add lines %d to %d: %s (the %s before line %d were added)",
				first, last, err, plural(s.added+s.matched, "task"), first),
			cause: err,
		}
	}
	out := s.cmd.OutOrStdout()
	for i, t := range tasks {
		if t.Existing {
			s.matched++
			fmt.Fprintf(s.cmd.ErrOrStderr(), "hookq: line %d: key %s matched existing task %s; "+
				"nothing added\n", s.nums[i], printable(s.specs[i].Key), t.ID)
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
