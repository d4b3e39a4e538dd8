package main

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// lsFlags are the flags of "hookq ls".
type lsFlags struct {
	state, url    string
	after, before string
	limit         int
	asJSON        bool
}

// defaultListLimit is the default of ls --limit.
const defaultListLimit = 20

// newLsCmd returns "hookq ls".
func newLsCmd(a *app) *cobra.Command {
	var f lsFlags
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List tasks, newest first",
		Long: `Ls lists tasks, newest first. As a table it starts with a summary of the
whole queue: the tasks in each state, how long the oldest pending task has
waited and when the next scheduled one runs. With --json it prints a JSON
array of task objects and nothing else.

--url keeps the tasks whose URL contains the text given, anywhere in it:
a host, a path, a whole URL's start. It is matched against the URL as
shown, whose userinfo (user:password@) reads xxxxx.

A table holds at most --limit tasks; when it is full, ls says on stderr
how to list the next page: --after the last ID shown, which lists the
tasks older than it.`,
		Example: `  hookq ls
  hookq ls --state failed --limit 100
  hookq ls --url example.com/hooks/
  hookq ls --after 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq ls --json | jq -r '.[].id'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.ls(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.state, "state", "", "only tasks in this state: scheduled, pending, active, "+
		"retrying, succeeded, failed or cancelled")
	fl.StringVar(&f.url, "url", "", "only tasks whose URL contains this text")
	fl.IntVar(&f.limit, "limit", defaultListLimit, "show at most this many tasks (at most 1000)")
	fl.StringVar(&f.after, "after", "", "show the next page: tasks older than this task ID")
	fl.StringVar(&f.before, "before", "", "the same as --after")
	fl.MarkHidden("before")
	fl.BoolVar(&f.asJSON, "json", false, "print a JSON array of task objects")
	cmd.RegisterFlagCompletionFunc("state", completeStates(allStates))
	return cmd
}

// maxListLimit is the largest --limit: the most tasks the queue and the
// server list at once.
const maxListLimit = queue.MaxListLimit

// ls runs "hookq ls".
func (a *app) ls(cmd *cobra.Command, f *lsFlags) error {
	opts := queue.ListOptions{Limit: f.limit, URL: f.url}
	if f.limit < 1 || f.limit > maxListLimit {
		return usagef("--limit %d is not from 1 to %d", f.limit, maxListLimit)
	}
	if f.state != "" {
		st, err := queue.ParseState(f.state)
		if err != nil {
			return usageError{err}
		}
		opts.State = st
	}
	if f.after != "" && f.before != "" {
		return usagef("--after and --before are the same flag: give one")
	}
	if cursor := f.after + f.before; cursor != "" {
		id, err := parseID(cursor)
		if err != nil {
			return err
		}
		opts.Before = &id
	}

	api, err := a.connect(readAccess, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer api.Close()
	tasks, err := api.List(cmd.Context(), opts)
	if err != nil {
		return err
	}
	if f.asJSON {
		if tasks == nil {
			tasks = []*queue.Task{}
		}
		return writeJSON(cmd.OutOrStdout(), tasks)
	}
	stats, err := api.Stats(cmd.Context())
	if err != nil {
		return err
	}

	out := cmd.OutOrStdout()
	if err := printSummary(out, stats, time.Now()); err != nil {
		return err
	}
	if len(tasks) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no tasks")
		return nil
	}
	fmt.Fprintln(out)
	if err := printTasks(out, tasks); err != nil {
		return err
	}
	if len(tasks) == f.limit {
		fmt.Fprintf(cmd.ErrOrStderr(), "more tasks may follow: %s\n",
			nextPage(a.dataFlag, f, tasks[len(tasks)-1].ID))
	}
	return nil
}

// printSummary prints the header of ls: the tasks in each state (those
// with any), the age of the oldest pending task and the next run time.
func printSummary(w io.Writer, s *queue.Stats, now time.Time) error {
	var parts []string
	for _, st := range allStates {
		if n := s.Counts[st.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	counts := ""
	if len(parts) > 0 {
		counts = " (" + strings.Join(parts, ", ") + ")"
	}
	oldest, next := "none", "none"
	if s.OldestPending != nil {
		oldest = shortDuration(now.Sub(*s.OldestPending)) + " old"
	}
	if s.NextRun != nil {
		next = "in " + shortDuration(s.NextRun.Sub(now))
		if !s.NextRun.After(now) {
			next = "now"
		}
	}
	_, err := fmt.Fprintf(w, "Tasks: %d%s\nOldest pending: %s, next run: %s\n",
		s.Total, counts, oldest, next)
	return err
}

// printTasks prints tasks as an aligned table, with the text of users made
// printable.
func printTasks(w io.Writer, tasks []*queue.Task) error {
	now := time.Now()
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tMETHOD\tURL\tAGE")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.State, strconv.Itoa(t.Attempts),
			printable(t.Method), displayURL(t.URL, urlWidth),
			age(t.CreatedAt, now))
	}
	return tw.Flush()
}

// nextPage returns the ls command line of the page after the one that
// ended with last, with the --data the user gave (data, if not empty).
func nextPage(data string, f *lsFlags, last queue.ID) string {
	args := []string{"hookq"}
	if data != "" {
		args = append(args, "--data", shellQuote(data))
	}
	args = append(args, "ls")
	if f.state != "" {
		args = append(args, "--state", shellQuote(f.state))
	}
	if f.url != "" {
		args = append(args, "--url", shellQuote(f.url))
	}
	if f.limit != defaultListLimit {
		args = append(args, "--limit", strconv.Itoa(f.limit))
	}
	return strings.Join(append(args, "--after", last.String()), " ")
}

// shellSafe matches words a POSIX shell takes as they are.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote returns s as one word for a POSIX shell, made printable.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(printable(s), "'", `'\''`) + "'"
}

// allStates lists every state in lifecycle order.
var allStates = []queue.State{queue.Scheduled, queue.Pending, queue.Active, queue.Retrying,
	queue.Succeeded, queue.Failed, queue.Cancelled}
