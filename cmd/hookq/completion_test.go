package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// completions runs hookq's completion of args and returns the offered
// words, without their descriptions.
func completions(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	out := mustRun(t, dir, append([]string{"__complete"}, args...)...)
	var words []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, ":") { // the directive
			continue
		}
		word, _, _ := strings.Cut(line, "\t")
		words = append(words, word)
	}
	return words
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	scheduled := addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/s")
	cancelled := addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/c")
	mustRun(t, dir, "cancel", cancelled)

	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := mustRun(t, dir, "completion", shell); !strings.Contains(out, "hookq") {
			t.Errorf("completion %s printed no script", shell)
		}
	}
	if out := mustRun(t, dir, "--help"); !strings.Contains(out, "completion") {
		t.Errorf("hookq --help does not list completion:\n%s", out)
	}

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ls", "--state", ""}, "scheduled pending active retrying succeeded failed cancelled"},
		{[]string{"retry", "--state", ""}, "succeeded failed cancelled"},
		{[]string{"cancel", "--state", ""}, "scheduled pending active retrying"},
		{[]string{"purge", "--state", ""}, "succeeded failed cancelled"},
		{[]string{"add", "--protocol", ""}, "celery plain"},
		{[]string{"show", ""}, cancelled + " " + scheduled},
		{[]string{"retry", ""}, cancelled},
		{[]string{"cancel", ""}, scheduled},
		{[]string{"show", strings.ToLower(scheduled[:25])}, scheduled},
		{[]string{"show", scheduled, ""}, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(completions(t, dir, tt.args...), " "); got != tt.want {
			t.Errorf("completion of %q = %q; want %q", tt.args, got, tt.want)
		}
	}
	// Descriptions name the state and the URL.
	out := mustRun(t, dir, "__complete", "retry", "")
	if !strings.Contains(out, cancelled+"\tcancelled http://127.0.0.1:1/c") {
		t.Errorf("retry completion lacks a description:\n%s", out)
	}
	// No queue: nothing offered, no error.
	if got := completions(t, t.TempDir(), "show", ""); len(got) != 0 {
		t.Errorf("completion without a queue = %v", got)
	}
}

func TestCLI_HelpHasExamples(t *testing.T) {
	t.Parallel()
	cmds := [][]string{{}, {"serve"}, {"add"}, {"ls"}, {"show"}, {"wait"}, {"retry"}, {"cancel"},
		{"stats"}, {"purge"}, {"compact"}, {"version"}, {"help"}, {"completion"},
		{"completion", "bash"}, {"completion", "zsh"}, {"completion", "fish"},
		{"completion", "powershell"}}
	for _, c := range cmds {
		out := mustRun(t, t.TempDir(), append(c, "--help")...)
		if !strings.Contains(out, "\nExamples:\n  ") {
			t.Errorf("hookq %v --help has no examples:\n%s", c, out)
		}
	}
}

func TestCLI_VersionJSON(t *testing.T) {
	t.Parallel()
	var v map[string]string
	if err := json.Unmarshal([]byte(mustRun(t, t.TempDir(), "version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v["version"] != testVersion || !strings.HasPrefix(v["go"], "go") || v["os"] == "" ||
		v["arch"] == "" || len(v) != 4 {
		t.Errorf("version --json = %v", v)
	}
}

func TestCommands_HaveExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.Hidden && c.Example == "" {
			t.Errorf("command %q has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&app{}))
}

func TestCompletion_EscapesBidiControls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id := addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/\u202etxt.exe")
	out := mustRun(t, dir, "__complete", "show", "")
	// Tabs separate the completions from their descriptions.
	if c, ok := controlChar(strings.ReplaceAll(out, "\t", " ")); ok || !strings.Contains(out, id+"\tscheduled http://127.0.0.1:1/\\u202etxt.exe") {
		t.Errorf("completion shows %q raw, or lacks the task:\n%s", c, out)
	}
}
