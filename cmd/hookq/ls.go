package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// newLsCmd returns "hookq ls".
func newLsCmd(a *app) *cobra.Command {
	var (
		state, before string
		limit         int
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List tasks, newest first",
		Long: `Ls lists tasks, newest first, as a table or, with --json, as a JSON array of
task objects. Page through older tasks with --before set to the last ID shown.`,
		Example: `  hookq ls
  hookq ls --state failed --limit 100
  hookq ls --before 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq ls --json | jq -r '.[].id'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := queue.ListOptions{Limit: limit}
			if limit < 1 || limit > maxListLimit {
				return usagef("--limit %d is not from 1 to %d", limit, maxListLimit)
			}
			if state != "" {
				st, err := queue.ParseState(state)
				if err != nil {
					return usageError{err}
				}
				opts.State = st
			}
			if before != "" {
				id, err := parseID(before)
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
			if asJSON {
				if tasks == nil {
					tasks = []*queue.Task{}
				}
				return writeJSON(cmd.OutOrStdout(), tasks)
			}
			return printTasks(cmd, tasks)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "only tasks in this state: scheduled, pending, active, "+
		"retrying, succeeded, failed or cancelled")
	fl.IntVar(&limit, "limit", 20, "show at most this many tasks (at most 1000)")
	fl.StringVar(&before, "before", "", "show tasks older than this task ID")
	fl.BoolVar(&asJSON, "json", false, "print a JSON array of task objects")
	return cmd
}

// maxListLimit is the largest --limit: the most tasks the queue and the
// server list at once.
const maxListLimit = queue.MaxListLimit

// printTasks prints tasks as an aligned table, with the text of users made
// printable.
func printTasks(cmd *cobra.Command, tasks []*queue.Task) error {
	if len(tasks) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "no tasks")
		return nil
	}
	now := time.Now()
	tw := newTable(cmd.OutOrStdout())
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tMETHOD\tURL\tAGE")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.State, strconv.Itoa(t.Attempts),
			printable(t.Method), displayURL(t.URL, urlWidth),
			age(t.CreatedAt, now))
	}
	return tw.Flush()
}
