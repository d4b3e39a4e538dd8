package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// newPurgeCmd returns "hookq purge".
func newPurgeCmd(a *app) *cobra.Command {
	var (
		olderThan time.Duration
		state     string
	)
	cmd := &cobra.Command{
		Use:   "purge --older-than DUR [--state STATE]",
		Short: "Delete finished tasks now, as the retention sweep would later",
		Long: `Purge deletes the final tasks (succeeded, failed or cancelled) that finished
more than --older-than ago, with their attempt history, and prints how many
it deleted. --state limits it to one final state. Tasks that have not
finished are never deleted.

The server's retention sweep (serve --retention, 7 days by default) does
the same in the background; purge is for deleting sooner. It works in
small transactions, so a running server goes on dispatching meanwhile.
The file does not shrink: its free pages are reused ("hookq compact"
gives them back to the filesystem).`,
		Example: `  hookq purge --older-than 24h
  hookq purge --older-than 0s --state cancelled
  hookq purge --older-than 72h --state succeeded && hookq compact`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("older-than") {
				return usagef("purge needs --older-than, such as --older-than 24h " +
					"(0s deletes every finished task)")
			}
			if olderThan < 0 {
				return usagef("--older-than %s is negative", olderThan)
			}
			var st queue.State
			if state != "" {
				var err error
				if st, err = queue.ParseState(state); err != nil {
					return usageError{err}
				}
				if !slices.Contains(finalStates, st) {
					return usagef("purge --state takes %s, not %s", stateList(finalStates), st)
				}
			}

			api, err := a.connect(writeAccess, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer api.Close()
			n, err := api.Purge(cmd.Context(), olderThan, st)
			if n > 0 || err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", plural(n, "task"))
			}
			if err != nil {
				return bulkFailed(cmd.Context(), api, "purge", "deleted", n, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&olderThan, "older-than", 0, "delete tasks that finished more than this long ago")
	fl.StringVar(&state, "state", "", "only tasks in this final state: succeeded, failed or cancelled")
	cmd.RegisterFlagCompletionFunc("state", completeStates(finalStates))
	return cmd
}
