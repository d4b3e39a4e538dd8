package main

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// State sets offered by completion, by what a command accepts.
var (
	finalStates      = []queue.State{queue.Succeeded, queue.Failed, queue.Cancelled}
	unfinishedStates = []queue.State{queue.Scheduled, queue.Pending, queue.Active, queue.Retrying}
)

// completeStates completes a --state flag with the names of states.
func completeStates(states []queue.State) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		out := make([]cobra.Completion, len(states))
		for i, st := range states {
			out[i] = st.String()
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// Bounds of the task IDs completion offers: the newest ones, read quickly.
const (
	completeLimit   = 200
	completeTimeout = 2 * time.Second
)

// completeIDs completes a command's one task ID argument with the IDs of
// the newest tasks for which keep reports true (nil keeps all), each
// described by its state and URL. It offers nothing when no queue answers.
func (a *app) completeIDs(keep func(queue.State) bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string,
		toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		defer cancel()
		api, err := a.connect(readAccess, io.Discard)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer api.Close()
		tasks, err := api.List(ctx, queue.ListOptions{Limit: completeLimit})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, t := range tasks {
			id := t.ID.String()
			if (keep == nil || keep(t.State)) && strings.HasPrefix(id, strings.ToUpper(toComplete)) {
				out = append(out, cobra.CompletionWithDesc(id,
					t.State.String()+" "+displayURL(t.URL, urlWidth)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completionExamples are the examples of "hookq completion SHELL": how
// to load the script.
var completionExamples = map[string]string{
	"bash":       "  source <(hookq completion bash)",
	"zsh":        `  hookq completion zsh > "${fpath[1]}/_hookq"`,
	"fish":       "  hookq completion fish > ~/.config/fish/completions/hookq.fish",
	"powershell": "  hookq completion powershell | Out-String | Invoke-Expression",
}

// addCompletionCmd adds "hookq completion", cobra's own, with examples.
func addCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = "  source <(hookq completion bash)\n  hookq completion zsh --help"
		for _, sub := range c.Commands() {
			sub.Example = completionExamples[sub.Name()]
		}
	}
}
