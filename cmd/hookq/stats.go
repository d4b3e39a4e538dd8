package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// newStatsCmd returns "hookq stats".
func newStatsCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show counts per state, the oldest pending task, the next run and the last minute's throughput",
		Long: `Stats shows the number of tasks in each state, how long the oldest pending
task has been due, the next run time, and what the workers did over the
last minute: tasks finished per second, and the share of attempts that
failed. The last minute is read from per-second tallies in the store, so
stats tells the same with or without a running server.

--json prints the object of GET /v1/stats, whose field names are stable.`,
		Example: `  hookq stats
  hookq stats --json | jq .counts.failed`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := a.connect(readAccess, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer api.Close()
			s, err := api.Stats(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			return printStats(cmd, s)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stats as JSON")
	return cmd
}

// printStats prints the stats as an aligned table.
func printStats(cmd *cobra.Command, s *queue.Stats) error {
	now := time.Now()
	tw := newTable(cmd.OutOrStdout())
	fmt.Fprintln(tw, "STATE\tTASKS")
	for _, st := range []queue.State{queue.Scheduled, queue.Pending, queue.Active, queue.Retrying,
		queue.Succeeded, queue.Failed, queue.Cancelled} {
		fmt.Fprintf(tw, "%s\t%d\n", st, s.Counts[st.String()])
	}
	fmt.Fprintf(tw, "total\t%d\n", s.Total)
	if err := tw.Flush(); err != nil {
		return err
	}

	oldest, next := "none", "none"
	if s.OldestPending != nil {
		oldest = when(*s.OldestPending, now)
		// A retry is due later than the task's first run: say since when.
		due := time.Duration(s.OldestPendingAge * float64(time.Second))
		if now.Sub(*s.OldestPending)-due > time.Second {
			oldest += ", due for " + shortDuration(due)
		}
	}
	if s.NextRun != nil {
		next = when(*s.NextRun, now)
	}
	w := s.LastMinute
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "\noldest pending: %s\nnext run:       %s\n"+
		"\nlast %ds:       %d succeeded, %d failed, %.2f tasks/s\n"+
		"attempts:       %d, %.2f/s, %.1f%% failed\n",
		oldest, next, w.Seconds, w.Succeeded, w.Failed, w.FinishedPerSecond,
		w.Attempts, w.AttemptsPerSecond, 100*w.ErrorRate)
	return err
}
