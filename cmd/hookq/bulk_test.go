package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// states returns the state of each task, by ID, as ls --json reports it.
func states(t *testing.T, dir string) map[string]string {
	t.Helper()
	var tasks []struct{ ID, State string }
	if err := json.Unmarshal([]byte(mustRun(t, dir, "ls", "--json", "--limit", "1000")), &tasks); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(tasks))
	for _, task := range tasks {
		out[task.ID] = task.State
	}
	return out
}

func TestCLI_BulkRetryCancelPurge(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if mode == "Server" {
				startServe(t, dir)
			}
			var ids []string
			for range 3 {
				ids = append(ids, addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/"))
			}
			mustRun(t, dir, "cancel", ids[0])

			tests := []struct {
				args   []string
				code   int
				stdout string
				stderr string
			}{
				{[]string{"cancel", "--state", "scheduled"}, 2, "",
					"hookq: cancel every scheduled task: standard input is not a terminal"},
				{[]string{"retry", "--state", "pending", "--yes"}, 2, "",
					"hookq: retry --state takes succeeded, failed or cancelled, not pending"},
				{[]string{"cancel", "--state", "failed", "--yes"}, 2, "",
					"hookq: cancel --state takes scheduled, pending, active or retrying, not failed"},
				{[]string{"cancel", "--state", "done", "--yes"}, 2, "", `unknown state "done"`},
				{[]string{"cancel", "--state", "scheduled", ids[1]}, 2, "", "not both"},
				{[]string{"cancel", "--yes", ids[1]}, 2, "", "--yes goes with --state"},
				{[]string{"cancel", "--state", "scheduled", "--yes"}, 0, "cancelled 2 tasks\n", ""},
				{[]string{"cancel", "--state", "scheduled", "--yes"}, 0, "cancelled 0 tasks\n", ""},
				{[]string{"purge", "--state", "cancelled"}, 2, "", "purge needs --older-than"},
				{[]string{"purge", "--older-than", "1h", "--state", "pending"}, 2, "",
					"purge --state takes succeeded, failed or cancelled, not pending"},
				{[]string{"purge", "--older-than", "1h"}, 0, "deleted 0 tasks\n", ""},
				{[]string{"retry", "-y", "--state", "cancelled"}, 0, "retried 3 tasks\n", ""},
			}
			for _, tt := range tests {
				r := hookq(t, dir, tt.args...)
				if r.code != tt.code || r.stdout != tt.stdout || !strings.Contains(r.stderr, tt.stderr) {
					t.Errorf("hookq %v = exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q",
						tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
				}
			}
			for id, st := range states(t, dir) {
				if st != "pending" && st != "active" && st != "retrying" {
					t.Errorf("task %s is %s after retry --state cancelled", id, st)
				}
			}

			// Cancel them again (a server may be trying them, so their
			// state changes) and purge them.
			for _, id := range ids {
				mustRun(t, dir, "cancel", id)
			}
			if out := mustRun(t, dir, "purge", "--older-than", "0s", "--state", "cancelled"); out != "deleted 3 tasks\n" {
				t.Errorf("purge printed %q; want deleted 3 tasks", out)
			}
			if left := states(t, dir); len(left) != 0 {
				t.Errorf("tasks left after purge: %v", left)
			}
		})
	}
}

func TestCLI_BulkConfirmOnTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ids := []string{
		addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/"),
		addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/"),
	}

	// No: nothing changes, exit 1.
	tm := startTerminal(t, dir, "cancel", "--state", "scheduled")
	tm.waitFor(t, "Cancel 2 scheduled tasks? [y/N] ")
	tm.typeLine(t, "n")
	if code := tm.wait(t); code != 1 || !strings.Contains(tm.output(), "nothing changed") {
		t.Errorf("declined cancel = exit %d:\n%s", code, tm.output())
	}
	for _, id := range ids {
		if st := states(t, dir)[id]; st != "scheduled" {
			t.Errorf("task %s is %s after a declined cancel", id, st)
		}
	}

	// Yes.
	tm = startTerminal(t, dir, "cancel", "--state", "scheduled")
	tm.waitFor(t, "[y/N] ")
	tm.typeLine(t, "y")
	if code := tm.wait(t); code != 0 || !strings.HasSuffix(tm.output(), "cancelled 2 tasks\n") {
		t.Errorf("confirmed cancel = exit %d:\n%s", code, tm.output())
	}

	// Nothing to do: no question.
	tm = startTerminal(t, dir, "retry", "--state", "failed")
	if code := tm.wait(t); code != 0 || tm.output() != "retried 0 tasks: none is failed\n" {
		t.Errorf("retry of no task = exit %d: %q", code, tm.output())
	}
}
