package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/queue"
)

// taskWithHistory is the JSON of "hookq show --json": the task object with
// its attempts, oldest first.
type taskWithHistory struct {
	*queue.Task
	History []queue.Attempt `json:"history"`
}

// MarshalJSON writes the task object with "history" added as its last
// field. (The embedded task's own MarshalJSON would otherwise be promoted
// and drop the history.)
func (t taskWithHistory) MarshalJSON() ([]byte, error) {
	task, err := json.Marshal(t.Task)
	if err != nil {
		return nil, err
	}
	history := t.History
	if history == nil {
		history = []queue.Attempt{}
	}
	h, err := json.Marshal(history)
	if err != nil {
		return nil, err
	}
	out := append(task[:len(task)-1], `,"history":`...)
	out = append(out, h...)
	return append(out, '}'), nil
}

// newShowCmd returns "hookq show".
func newShowCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one task with its attempts",
		Long: `Show prints a task's fields and its attempt history: when each attempt
started, how long it took, the reply's status, the outcome, the error and
the start of the reply's body. Control characters in them are shown
escaped (\n, \x1b), and the values of headers that hold credentials
(Authorization, Cookie, X-Api-Key, ...) as xxxxx. With --json it prints the
task object, exactly as stored, with an extra "history" array of attempt
objects.`,
		Example: `  hookq show 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A
  hookq show --json 01JF3Z8Q4R2S5T6V7W8X9Y0Z1A | jq .history`,
		Args:              oneTaskID,
		ValidArgsFunction: a.completeIDs(nil),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			api, err := a.connect(readAccess, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer api.Close()
			t, err := api.Get(cmd.Context(), id)
			if err != nil {
				return taskErr(id, err)
			}
			atts, err := api.Attempts(cmd.Context(), id)
			if err != nil {
				return taskErr(id, err) // deleted meanwhile, say
			}
			if atts == nil {
				atts = []queue.Attempt{}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), taskWithHistory{Task: t, History: atts})
			}
			return printTask(cmd.OutOrStdout(), t, atts)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the task object with a "history" array`)
	return cmd
}

// printTask prints a task's fields and its attempts for people. Every text
// that came from a user or an endpoint is made printable, and the values of
// credential headers are hidden.
func printTask(w io.Writer, t *queue.Task, atts []queue.Attempt) error {
	now := time.Now()
	tw := newTable(w)
	field := func(name, value string) { fmt.Fprintf(tw, "%s:\t%s\n", name, value) }

	field("ID", t.ID.String())
	field("State", t.State.String())
	field("Method", printable(t.Method))
	field("URL", displayURL(t.URL, 1<<16))
	field("Args", printable(compactJSON(redact.Args(t.Args))))
	for _, k := range slices.Sorted(maps.Keys(t.Headers)) {
		field("Header", printable(k)+": "+headerValue(k, t.Headers[k]))
	}
	if len(t.JSON) > 0 && string(t.JSON) != "null" {
		field("JSON body", truncate(printable(compactJSON(t.JSON)), 200))
	}
	field("Protocol", printable(t.Protocol))
	if t.Key != nil {
		field("Key", printable(*t.Key))
	}
	field("Attempts", attemptsText(t, atts))
	field("Timeout", time.Duration(t.Timeout).String())
	field("Created", when(t.CreatedAt, now))
	if t.RunAt != nil {
		field("Run at", when(*t.RunAt, now))
	}
	if t.RetriedAt != nil {
		field("Retried", when(*t.RetriedAt, now))
	}
	if t.NextAttemptAt != nil && !t.State.Final() {
		field("Next attempt", when(*t.NextAttemptAt, now))
	}
	if t.FinishedAt != nil {
		field("Finished", when(*t.FinishedAt, now))
	}
	if t.State == queue.Succeeded {
		field("Result", truncate(printable(compactJSON(t.Result)), 200))
	}
	if t.Error != nil {
		field("Error", errorText(t.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(atts) == 0 {
		_, err := fmt.Fprintln(w, "No attempts yet.")
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "N\tSTARTED\tLATENCY\tSTATUS\tOUTCOME\tERROR\tBODY")
	for _, at := range atts {
		status := "-"
		if at.StatusCode != 0 {
			status = strconv.Itoa(at.StatusCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", at.N,
			at.StartedAt.UTC().Format(time.RFC3339), time.Duration(at.Latency).Round(time.Millisecond),
			status, printable(dash(at.Outcome)), truncate(errorText(at.Error), urlWidth),
			truncate(printable(dash(at.Body)), bodyWidth))
	}
	return tw.Flush()
}

// attemptsText describes a task's attempts against its limit. After a
// user's retry the limit applies afresh, so the attempts since then are
// counted too: those of the history that started at or after the retry.
// (The history, unlike the task's attempt base, reads the same from a
// server as from the store.)
func attemptsText(t *queue.Task, atts []queue.Attempt) string {
	if t.RetriedAt == nil {
		return fmt.Sprintf("%d (at most %d)", t.Attempts, t.MaxAttempts)
	}
	since := 0
	for _, at := range atts {
		if !at.StartedAt.Before(*t.RetriedAt) {
			since++
		}
	}
	return fmt.Sprintf("%d (%d since the last retry, at most %d)", t.Attempts, since,
		t.MaxAttempts)
}
