package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdd_From(t *testing.T) {
	t.Parallel()
	const lines = `{"url":"http://127.0.0.1:1/a","run_at":"2099-01-01T00:00:00Z","args":{"x":1.50}}

  {"url":"http://127.0.0.1:1/b","method":"post","json":{"k":[1,2]},"key":"k-b","run_at":"2099-01-01T00:00:00Z"}
{"url":"http://127.0.0.1:1/c","max_attempts":1,"timeout":"5s","protocol":"plain","headers":{"X-T":"1"},"run_at":"2099-01-01T00:00:00Z"}
`
	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if mode == "Server" {
				startServe(t, dir)
			}
			file := filepath.Join(t.TempDir(), "tasks.jsonl")
			if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
				t.Fatal(err)
			}

			// From a file: one ID per task, in the order of the lines.
			r := hookq(t, dir, "add", "--from", file)
			ids := strings.Fields(r.stdout)
			if r.code != 0 || len(ids) != 3 || r.stderr != "" {
				t.Fatalf("add --from = exit %d, stdout %q, stderr %q; want 3 IDs", r.code, r.stdout, r.stderr)
			}
			want := map[string]map[string]string{
				ids[0]: {"url": `"http://127.0.0.1:1/a"`, "args": `{"x":1.50}`, "method": `"GET"`},
				ids[1]: {"method": `"POST"`, "json": `{"k":[1,2]}`, "key": `"k-b"`},
				ids[2]: {"max_attempts": "1", "timeout": `"5s"`, "protocol": `"plain"`,
					"headers": `{"X-T":"1"}`},
			}
			for id, fields := range want {
				out := mustRun(t, dir, "show", "--json", id)
				var task map[string]json.RawMessage
				if err := json.Unmarshal([]byte(out), &task); err != nil {
					t.Fatal(err)
				}
				for k, v := range fields {
					var b bytes.Buffer
					json.Compact(&b, task[k])
					if got := b.String(); got != v {
						t.Errorf("task %s: %s = %s; want %s", id, k, got, v)
					}
				}
			}

			// From stdin, quietly: the key of line 3 matches.
			r = hookqIn(t, dir, lines, "add", "--from", "-", "--quiet")
			wantOut := "added 2 tasks (1 matched a kept task by key and were not added again)\n"
			wantErr := "hookq: line 3: key k-b matched existing task " + ids[1] + "; nothing added\n"
			if r.code != 0 || r.stdout != wantOut || r.stderr != wantErr {
				t.Errorf("add --from - --quiet = exit %d, stdout %q, stderr %q; want %q, %q",
					r.code, r.stdout, r.stderr, wantOut, wantErr)
			}
		})
	}
}

func TestAdd_FromInvalid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	input := `{"url":"http://127.0.0.1:1/ok"}
{"url":"ftp://127.0.0.1/"}
not json
{"url":"http://127.0.0.1:1/","colour":"red"}
{"url":"http://127.0.0.1:1/"} {"url":"http://127.0.0.1:1/"}
{"url":"http://127.0.0.1:1/","args":{"x":null}}
`
	r := hookqIn(t, dir, input, "add", "--from", "-")
	wantErr := []string{
		`hookq: line 2: url scheme "ftp" is not http or https`,
		`hookq: line 3: not a task object: invalid character 'o' in literal null (expecting 'u')`,
		`hookq: line 4: not a task object: json: unknown field "colour"`,
		`hookq: line 5: more than one JSON value`,
		`hookq: line 6: argument "x": null is not a value (use a string, number or boolean)`,
		`hookq: invalid task: 5 of 6 tasks are invalid; nothing was added`,
	}
	if r.code != 2 || r.stdout != "" || r.stderr != strings.Join(wantErr, "\n")+"\n" {
		t.Errorf("add --from with bad lines = exit %d, stdout %q, stderr:\n%s\nwant exit 2 and:\n%s",
			r.code, r.stdout, r.stderr, strings.Join(wantErr, "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, storeFile)); err == nil {
		if out := mustRun(t, dir, "ls", "--json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("tasks were added from an invalid file: %s", out)
		}
	}

	// Many bad lines: the first 20 are listed.
	r = hookqIn(t, dir, strings.Repeat("{}\n", 25), "add", "--from", "-")
	if r.code != 2 || strings.Count(r.stderr, "url is required") != maxLineErrors ||
		!strings.Contains(r.stderr, "... and 5 more invalid lines") {
		t.Errorf("add --from of 25 bad lines = exit %d, stderr:\n%s", r.code, r.stderr)
	}

	for _, tt := range []struct {
		args     []string
		inStderr string
	}{
		{[]string{"add", "--from", "-", "http://127.0.0.1:1/"}, "takes no URL"},
		{[]string{"add", "--from", "-", "--key", "k"}, "--key does not go with --from"},
		{[]string{"add", "--quiet", "http://127.0.0.1:1/"}, "--quiet goes with --from"},
		{[]string{"add", "--from", "/does/not/exist"}, "no such file"},
	} {
		r := hookq(t, dir, tt.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.inStderr) {
			t.Errorf("hookq %v = exit %d, stderr %q; want a failure with %q", tt.args, r.code,
				r.stderr, tt.inStderr)
		}
	}
}

// TestAdd_FromChunks adds more tasks than one chunk holds, through a
// server, and checks every one is stored once and in order.
func TestAdd_FromChunks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startServe(t, dir)
	const n = 2500
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"url":"http://127.0.0.1:1/%d","run_at":"2099-01-01T00:00:00Z"}`+"\n", i)
	}
	r := hookqIn(t, dir, b.String(), "add", "--from", "-")
	ids := strings.Fields(r.stdout)
	if r.code != 0 || len(ids) != n {
		t.Fatalf("add --from of %d lines = exit %d, %d IDs, stderr %q", n, r.code, len(ids), r.stderr)
	}
	var tasks []struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, dir, "ls", "--json", "--limit", "1000", "--url", "/2")), &tasks); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		var i int
		fmt.Sscanf(task.URL, "http://127.0.0.1:1/%d", &i)
		if ids[i] != task.ID {
			t.Errorf("line %d made task %s; add printed %s", i+1, task.ID, ids[i])
		}
	}
	if len(tasks) != 611 { // 2, 20-29, 200-299, 2000-2499
		t.Errorf("ls --url /2 found %d tasks; want 611", len(tasks))
	}
}

func TestAdd_FromProgressOnTerminal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(file, []byte(strings.Repeat(`{"url":"http://127.0.0.1:1/","run_at":"2099-01-01T00:00:00Z"}`+"\n", 1500)), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := startTerminal(t, dir, "add", "--from", file, "--quiet")
	if code := tm.wait(t); code != 0 {
		t.Fatalf("add --from on a terminal = exit %d:\n%s", code, tm.output())
	}
	out := tm.output()
	if !strings.Contains(out, "\radding [") || !strings.Contains(out, "] 100% 1500/1500") ||
		!strings.HasSuffix(out, "\nadded 1500 tasks\n") {
		t.Errorf("add --from --quiet on a terminal:\n%q", out)
	}

	// Printing IDs to the terminal: no bar to garble them.
	tm = startTerminal(t, dir, "add", "--from", file)
	tm.wait(t)
	if out := tm.output(); strings.Contains(out, "adding [") || strings.Count(out, "\n") != 1500 {
		t.Errorf("add --from printing IDs on a terminal drew a bar or lost lines")
	}
}
