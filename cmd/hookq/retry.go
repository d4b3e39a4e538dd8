package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/queue"
)

// newRetryCmd returns "hookq retry".
func newRetryCmd(a *app) *cobra.Command {
	var b bulkFlags
	cmd := &cobra.Command{
		Use:   "retry {ID | --state STATE}",
		Short: "Run a finished task again, or every task in a final state",
		Long: `Retry makes a final task (succeeded, failed or cancelled) pending again and
prints its new state. Its history is kept: attempts go on counting from
where they were, with a fresh allowance of its max attempts. Retrying a task
that has not finished fails.

With --state instead of an ID, retry retries every task in that final
state and prints how many. On a terminal it first asks for confirmation;
elsewhere it needs --yes. A cancelled task whose idempotency key another
task has taken since is left cancelled.`,
		Example: `  hookq retry 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq retry --state failed
  hookq retry --state failed --yes   # in a script`,
		Args:              b.args,
		ValidArgsFunction: a.completeIDs(queue.State.Final),
		RunE: func(cmd *cobra.Command, args []string) error {
			if b.state != "" {
				return a.changeAll(cmd, &b, retryAction)
			}
			return a.changeTask(cmd, args[0], taskAPI.Retry)
		},
	}
	b.register(cmd, "retry every task in this final state: succeeded, failed or cancelled",
		finalStates)
	return cmd
}

// bulkFlags are the flags of retry and cancel that act on every task in
// a state.
type bulkFlags struct {
	state string
	yes   bool
}

// register adds the flags to cmd, completing --state with states.
func (b *bulkFlags) register(cmd *cobra.Command, usage string, states []queue.State) {
	cmd.Flags().StringVar(&b.state, "state", "", usage)
	cmd.Flags().BoolVarP(&b.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.RegisterFlagCompletionFunc("state", completeStates(states))
}

// args checks the arguments: one ID, or none with --state.
func (b *bulkFlags) args(cmd *cobra.Command, args []string) error {
	if b.state != "" {
		if len(args) > 0 {
			return usagef("give a task ID or --state, not both")
		}
		return nil
	}
	if b.yes {
		return usagef("--yes goes with --state")
	}
	if len(args) == 0 {
		return usagef("%s takes a task ID, or --state STATE for every task in a state", cmd.Name())
	}
	return oneTaskID(cmd, args)
}

// bulkAction is a change of every task in a state.
type bulkAction struct {
	verb, done string        // "retry", "retried"
	states     []queue.State // the states it applies to
	run        func(taskAPI, context.Context, queue.State) (int, error)
}

var (
	retryAction  = bulkAction{"retry", "retried", finalStates, taskAPI.RetryAll}
	cancelAction = bulkAction{"cancel", "cancelled", unfinishedStates, taskAPI.CancelAll}
)

// changeAll applies act to every task in the state of b, after the user
// confirmed it, and prints how many it changed.
func (a *app) changeAll(cmd *cobra.Command, b *bulkFlags, act bulkAction) error {
	st, err := queue.ParseState(b.state)
	if err != nil {
		return usageError{err}
	}
	if !slices.Contains(act.states, st) {
		return usagef("%s --state takes %s, not %s", act.verb, stateList(act.states), st)
	}
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()

	// Count, then ask, without holding the store while the user thinks.
	if !b.yes {
		if !isTerminal(a.stdin) {
			return usagef("%s every %s task: standard input is not a terminal, so nobody "+
				"can confirm; pass --yes to go ahead", act.verb, st)
		}
		n, err := a.countState(ctx, st, stderr)
		if err != nil {
			return err
		}
		if n == 0 {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s 0 tasks: none is %s\n", act.done, st)
			return err
		}
		ok, err := confirm(a.stdin, stderr, fmt.Sprintf("%s %s?", capital(act.verb),
			plural(int(n), st.String()+" task")))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not confirmed; nothing changed")
		}
	}

	api, err := a.connect(writeAccess, stderr)
	if err != nil {
		return err
	}
	defer api.Close()
	n, err := act.run(api, ctx, st)
	if n > 0 || err == nil {
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", act.done, plural(n, "task"))
	}
	if err != nil {
		return bulkFailed(ctx, api, fmt.Sprintf("%s --state %s", act.verb, st), act.done, n, err)
	}
	return nil
}

// bulkFailed returns the error of a bulk change, op (such as "retry
// --state failed"), that stopped part way after changing n tasks (when
// the store was opened directly; a server's count is lost with its
// reply). What was done stays done: the change works in transactions of
// at most 1,000 tasks. done is the past tense of the change, such as
// "retried".
func bulkFailed(ctx context.Context, api taskAPI, op, done string, n int, err error) error {
	interrupted := ctx.Err() != nil
	if _, direct := api.(*queue.Queue); direct {
		kept := fmt.Sprintf("the %s %s before stay %s", plural(n, "task"), done, done)
		var msg string
		switch {
		case interrupted && n == 0:
			msg = fmt.Sprintf("%s: interrupted before any task was %s", op, done)
		case interrupted:
			msg = fmt.Sprintf("%s: interrupted; %s; run the command again to finish", op, kept)
		case n > 0:
			msg = fmt.Sprintf("%s: %s (%s)", op, err, kept)
		default:
			return err
		}
		return &causeError{msg: msg, cause: err}
	}

	// Through a server, which may have stopped part way (on a full disk,
	// say) or been stopped: the count is not known here.
	var reply *httpapi.Error
	partWay := interrupted || outcomeUnknown(api, err) ||
		errors.As(err, &reply) && reply.StatusCode >= 500
	if !partWay {
		return err // refused before it began, or never sent
	}
	return &causeError{
		msg: fmt.Sprintf("%s: %s; what the server did before it stopped stays done (it "+
			"commits at most 1,000 tasks at a time), how many is not known here; run the "+
			"command again to finish", op, failure(ctx, err)),
		cause: err,
	}
}

// countState returns the number of tasks in state st.
func (a *app) countState(ctx context.Context, st queue.State, stderr io.Writer) (int64, error) {
	api, err := a.connect(readAccess, stderr)
	if err != nil {
		return 0, err
	}
	defer api.Close()
	s, err := api.Stats(ctx)
	if err != nil {
		return 0, err
	}
	return s.Counts[st.String()], nil
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
		return taskErr(id, err)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), t.State)
	return err
}

// stateList returns "a, b or c".
func stateList(states []queue.State) string {
	s := ""
	for i, st := range states {
		switch {
		case i == 0:
		case i == len(states)-1:
			s += " or "
		default:
			s += ", "
		}
		s += st.String()
	}
	return s
}

// capital returns s with its first letter in upper case.
func capital(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
