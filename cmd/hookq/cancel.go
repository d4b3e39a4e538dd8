package main

import (
	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// newCancelCmd returns "hookq cancel".
func newCancelCmd(a *app) *cobra.Command {
	var b bulkFlags
	cmd := &cobra.Command{
		Use:   "cancel {ID | --state STATE}",
		Short: "Cancel a task that has not finished, or every task in a state",
		Long: `Cancel stops a task that has not finished and prints its new state
(cancelled). An attempt in flight is aborted. Cancelling a task that has
already finished fails.

With --state instead of an ID, cancel cancels every task in that state
(scheduled, pending, active or retrying) and prints how many; tasks added
meanwhile are left alone. On a terminal it first asks for confirmation;
elsewhere it needs --yes.`,
		Example: `  hookq cancel 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq cancel --state scheduled
  hookq cancel --state retrying --yes   # in a script`,
		Args:              b.args,
		ValidArgsFunction: a.completeIDs(func(st queue.State) bool { return !st.Final() }),
		RunE: func(cmd *cobra.Command, args []string) error {
			if b.state != "" {
				return a.changeAll(cmd, &b, cancelAction)
			}
			return a.changeTask(cmd, args[0], taskAPI.Cancel)
		},
	}
	b.register(cmd, "cancel every task in this state: scheduled, pending, active or retrying",
		unfinishedStates)
	return cmd
}
