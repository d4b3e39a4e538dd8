package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// newRetryCmd returns "hookq retry".
func newRetryCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID",
		Short: "Run a finished task again",
		Long: `Retry makes a final task (succeeded, failed or cancelled) pending again and
prints its new state. Its history is kept: attempts go on counting from
where they were, with a fresh allowance of its max attempts. Retrying a task
that has not finished fails.`,
		Example: `  hookq retry 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq ls --state failed --json | jq -r '.[].id' | xargs -n1 hookq retry`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.changeTask(cmd, args[0], taskAPI.Retry)
		},
	}
}

// changeTask applies a state change (retry or cancel) to the task with
// the given ID and prints its new state.
func (a *app) changeTask(cmd *cobra.Command, arg string,
	change func(taskAPI, context.Context, queue.ID) (*queue.Task, error)) error {
	id, err := parseID(arg)
	if err != nil {
		return err
	}
	api, err := a.connect(writeAccess, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer api.Close()
	t, err := change(api, cmd.Context(), id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), t.State)
	return err
}
