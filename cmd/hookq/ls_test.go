package main

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// normalize replaces the IDs in out by <1>, <2>, ... in order of first
// appearance, and ages and durations by <age>, for golden comparisons.
func normalize(out string, ids []string) string {
	for i, id := range ids {
		out = strings.ReplaceAll(out, id, "<"+string(rune('1'+i))+">")
	}
	out = regexp.MustCompile(`\b\d+(ms|s|m|h|d)\b`).ReplaceAllString(out, "<age>")
	// Columns widen with the ages' text: compare words, not spaces.
	return regexp.MustCompile(` +`).ReplaceAllString(out, " ")
}

func TestLs_Golden(t *testing.T) {
	t.Parallel()
	const golden = `Tasks: 4 (3 scheduled, 1 cancelled)
Oldest pending: none, next run: in <age>

ID STATE ATTEMPTS METHOD URL AGE
<4> scheduled 0 POST http://xxxxx@127.0.0.1:1/b/2 <age>
<3> cancelled 0 GET http://127.0.0.1:1/a/1 <age>
`
	const page2 = `Tasks: 4 (3 scheduled, 1 cancelled)
Oldest pending: none, next run: in <age>

ID STATE ATTEMPTS METHOD URL AGE
<2> scheduled 0 GET http://127.0.0.1:1/a/0 <age>
<1> scheduled 0 GET http://127.0.0.1:1/other <age>
`
	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if mode == "Server" {
				startServe(t, dir)
			}
			ids := []string{
				addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/other"),
				addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/a/0"),
				addTask(t, dir, "--in", "2h", "http://127.0.0.1:1/a/1"),
				addTask(t, dir, "--in", "3h", "-X", "POST", "http://me:s3cret@127.0.0.1:1/b/2"),
			}
			mustRun(t, dir, "cancel", ids[2])

			r := hookq(t, dir, "ls", "--limit", "2", "--url", "/")
			if got := normalize(r.stdout, ids); r.code != 0 || got != golden {
				t.Errorf("ls --limit 2 = exit %d:\n%s\nwant:\n%s", r.code, got, golden)
			}
			wantHint := "more tasks may follow: hookq --data " + dir + " ls --url / --limit 2 --after " +
				ids[2] + "\n"
			if r.stderr != wantHint {
				t.Errorf("ls stderr = %q; want %q", r.stderr, wantHint)
			}
			// The hint runs as it is, from anywhere.
			hint := exec.Command(hookqBin, strings.Fields(strings.TrimPrefix(wantHint,
				"more tasks may follow: hookq"))...)
			hint.Dir, hint.Env = t.TempDir(), []string{envData + "=" + t.TempDir()}
			out, err := hint.Output()
			if got := normalize(string(out), ids); err != nil || got != page2 {
				t.Errorf("the hint printed (%v):\n%s\nwant:\n%s", err, got, page2)
			}
			if got := normalize(mustRun(t, dir, "ls", "--limit", "2", "--after", ids[2]), ids); got != page2 {
				t.Errorf("ls --after:\n%s\nwant:\n%s", got, page2)
			}
			// --before is the old name of --after.
			if got := normalize(mustRun(t, dir, "ls", "--limit", "2", "--before", ids[2]), ids); got != page2 {
				t.Errorf("ls --before:\n%s\nwant:\n%s", got, page2)
			}
			if r := hookq(t, dir, "ls", "--after", ids[0]); r.stderr != "no tasks\n" {
				t.Errorf("ls past the last page: stderr %q; want no tasks", r.stderr)
			}
			if strings.Contains(mustRun(t, dir, "ls"), "s3cret") {
				t.Error("ls shows a URL's password")
			}

			// Filters, in JSON.
			tests := []struct {
				args []string
				want []string
			}{
				{[]string{"--url", "127.0.0.1:1/a/"}, []string{ids[2], ids[1]}},
				{[]string{"--url", "xxxxx@"}, []string{ids[3]}},
				{[]string{"--url", "s3cret"}, nil},
				{[]string{"--state", "scheduled", "--url", "/a/"}, []string{ids[1]}},
				{[]string{"--state", "cancelled"}, []string{ids[2]}},
				{[]string{"--limit", "1", "--after", ids[3]}, []string{ids[2]}},
			}
			for _, tt := range tests {
				out := mustRun(t, dir, append([]string{"ls", "--json"}, tt.args...)...)
				var tasks []struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal([]byte(out), &tasks); err != nil {
					t.Fatalf("ls --json %v: %v\n%s", tt.args, err, out)
				}
				var got []string
				for _, task := range tasks {
					got = append(got, task.ID)
				}
				if strings.Join(got, ",") != strings.Join(tt.want, ",") {
					t.Errorf("ls --json %v = %v; want %v", tt.args, got, tt.want)
				}
			}
		})
	}
}

func TestLs_Errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	id := addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/")
	for _, args := range [][]string{
		{"ls", "--after", id, "--before", id},
		{"ls", "--after", "nope"},
	} {
		if r := hookq(t, dir, args...); r.code != 2 {
			t.Errorf("hookq %v = exit %d, stderr %q; want 2", args, r.code, r.stderr)
		}
	}
}
