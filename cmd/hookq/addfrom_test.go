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
			if r.code != 0 || r.stdout != wantOut || r.stderr != "" {
				t.Errorf("add --from - --quiet = exit %d, stdout %q, stderr %q; want %q and no stderr",
					r.code, r.stdout, r.stderr, wantOut)
			}

			// Without --quiet, the kept task's ID, and one line on stderr
			// for all the lines whose key matched.
			keyed := strings.Repeat(`{"url":"http://127.0.0.1:1/k","key":"k-b"}`+"\n", 3)
			r = hookqIn(t, dir, keyed, "add", "--from", "-")
			wantOut = strings.Repeat(ids[1]+"\n", 3)
			wantErr := "hookq: 3 lines matched a kept task by key and added nothing " +
				"(the ID printed for each is the kept task's)\n"
			if r.code != 0 || r.stdout != wantOut || r.stderr != wantErr {
				t.Errorf("add --from of matched keys = exit %d, stdout %q, stderr %q; want %q, %q",
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
		`hookq: line 4: not a task object: unknown field "colour"`,
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

// TestAdd_FromExport adds the tasks that ls --json printed, one object a
// line as jq -c '.[]' writes them, into another store: their output
// fields are ignored, their input fields kept.
func TestAdd_FromExport(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			src, dst := t.TempDir(), t.TempDir()
			startServe(t, src) // to run a task
			if mode == "Server" {
				startServe(t, dst)
			}
			recv := multiplyServer(t)
			mustRun(t, src, "add", "--wait", "-H", "X-Trace: t1", recv.URL, "x=6", "y=7")
			addTask(t, src, "--in", "1h", "--key", "order-9", "--max-attempts", "3", "-X", "POST",
				"--json", `{"a":[1,2]}`, "http://127.0.0.1:1/hook")
			mustRun(t, src, "cancel", addTask(t, src, "--in", "1h", "http://127.0.0.1:1/c"))

			var tasks []json.RawMessage
			if err := json.Unmarshal([]byte(mustRun(t, src, "ls", "--json")), &tasks); err != nil {
				t.Fatal(err)
			}
			var export bytes.Buffer
			for _, task := range tasks {
				json.Compact(&export, task)
				export.WriteByte('\n')
			}
			r := hookqIn(t, dst, export.String(), "add", "--from", "-")
			if r.code != 0 || len(strings.Fields(r.stdout)) != 3 || r.stderr != "" {
				t.Fatalf("add --from of an export = exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}

			// Each new task has the input fields of its original. The export
			// was newest first, so the last line is now the newest.
			inputs := []string{"url", "method", "args", "headers", "json", "protocol",
				"max_attempts", "timeout", "run_at", "key"}
			var added []map[string]json.RawMessage
			json.Unmarshal([]byte(mustRun(t, dst, "ls", "--json")), &added)
			if len(added) != 3 {
				t.Fatalf("ls of the new store: %d tasks; want 3", len(added))
			}
			for i, task := range tasks {
				var orig map[string]json.RawMessage
				json.Unmarshal(task, &orig)
				got := added[len(added)-1-i]
				for _, k := range inputs {
					if string(orig[k]) != string(got[k]) {
						t.Errorf("task %d: %s = %s; was %s", i, k, got[k], orig[k])
					}
				}
				if string(got["id"]) == string(orig["id"]) {
					t.Errorf("task %d kept its ID %s", i, got["id"])
				}
			}
		})
	}
}

func TestAdd_FromLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name, input string
		code        int
		stderr      string
	}{
		// A byte order mark, as some editors write, before line 1.
		{"ByteOrderMark", "\ufeff" + `{"url":"http://127.0.0.1:1/","run_at":"2099-01-01T00:00:00Z"}` + "\n", 0, ""},
		{"ByteOrderMarkOnly", "\ufeff\n", 0, ""},
		// Not at the start of the file, it is no mark: the line is invalid.
		{"ByteOrderMarkLater", "\n\ufeff{}\n", 2, "hookq: line 2: not a task object"},
		// Output fields pass; others do not.
		{"UnknownField", `{"url":"http://127.0.0.1:1/","id":"x","colour":"red"}`, 2,
			`hookq: line 1: not a task object: unknown field "colour"`},
		// A password that output hid cannot be added as xxxxx.
		{"HiddenPassword", `{"url":"http://xxxxx@127.0.0.1:1/"}`, 2,
			"hookq: line 1: the url's userinfo reads xxxxx, as hookq shows a hidden password: " +
				"put the real one back"},
	} {
		r := hookqIn(t, dir, tt.input, "add", "--from", "-")
		if r.code != tt.code || !strings.HasPrefix(r.stderr, tt.stderr) || (tt.stderr == "") != (r.stderr == "") {
			t.Errorf("%s: add --from = exit %d, stderr %q; want %d and %q", tt.name, r.code, r.stderr,
				tt.code, tt.stderr)
		}
	}
}
