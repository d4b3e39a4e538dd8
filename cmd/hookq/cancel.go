package main

import (
	"github.com/spf13/cobra"
)

// newCancelCmd returns "hookq cancel".
func newCancelCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task that has not finished",
		Long: `Cancel stops a task that has not finished and prints its new state
(cancelled). An attempt in flight is aborted. Cancelling a task that has
already finished fails.`,
		Example: `  hookq cancel 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.changeTask(cmd, args[0], taskAPI.Cancel)
		},
	}
}
