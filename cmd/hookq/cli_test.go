package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCLI_Quickstart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)
	srv := startServe(t, dir)

	// Enqueue, wait and print the result.
	r := hookq(t, dir, "add", "--wait", recv.URL+"/multiply", "x=10", "y=10")
	if r.code != 0 || r.stdout != "100\n" {
		t.Fatalf("add --wait = exit %d, stdout %q, stderr %q; want 0 and 100", r.code, r.stdout, r.stderr)
	}

	// The task is listed and shown while the server runs.
	var tasks []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, dir, "ls", "--json")), &tasks); err != nil {
		t.Fatalf("ls --json: %v", err)
	}
	if len(tasks) != 1 || tasks[0]["state"] != "succeeded" {
		t.Fatalf("ls --json = %v; want one succeeded task", tasks)
	}
	id := tasks[0]["id"].(string)
	if out := mustRun(t, dir, "ls"); !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Errorf("ls does not show %s succeeded:\n%s", id, out)
	}
	task := showJSON(t, dir, id)
	history, _ := task["history"].([]any)
	if task["result"] != 100.0 || len(history) != 1 {
		t.Errorf("show --json = %v; want result 100 and one attempt", task)
	}
	shownByServer := mustRun(t, dir, "show", "--json", id)

	// The HTTP API answers on the TCP listener too.
	resp, err := http.Get("http://" + srv.addr + "/" + id + "/status")
	if err != nil {
		t.Fatalf("GET status: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"task":{"id":"` + id + `","status":"SUCCESS","result":100}}`
	if strings.TrimSpace(string(body)) != want {
		t.Errorf("status view = %s; want %s", body, want)
	}

	// SIGTERM stops it cleanly, and it takes its socket with it.
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d after SIGTERM; want 0", code)
	}
	if _, err := os.Lstat(filepath.Join(dir, socketFile)); !os.IsNotExist(err) {
		t.Errorf("socket still there after stop: %v", err)
	}

	// Without a server the store is read directly, with the same output.
	if out := mustRun(t, dir, "ls"); !strings.Contains(out, id) {
		t.Errorf("ls after stop does not show %s:\n%s", id, out)
	}
	if out := mustRun(t, dir, "show", "--json", id); out != shownByServer {
		t.Errorf("show --json differs without a server:\n%s\nwith one:\n%s", out, shownByServer)
	}
	if r := hookq(t, dir, "wait", id); r.code != 0 || r.stdout != "100\n" {
		t.Errorf("wait without a server = exit %d %q; want 0 and 100", r.code, r.stdout)
	}
}

func TestCLI_WaitExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)
	startServe(t, dir)

	t.Run("Failed", func(t *testing.T) {
		r := hookq(t, dir, "add", "--wait", recv.URL, "x=ten", "y=1")
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "boom") {
			t.Errorf("add --wait of a failing task = exit %d, stdout %q, stderr %q; "+
				"want 1 with the reason on stderr", r.code, r.stdout, r.stderr)
		}
		id := addTask(t, dir, recv.URL, "x=ten", "y=1")
		r = hookq(t, dir, "wait", id)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "hookq: task "+id+" failed") {
			t.Errorf("wait = exit %d, stderr %q; want 1 and a failure message", r.code, r.stderr)
		}
	})
	t.Run("Succeeded", func(t *testing.T) {
		id := addTask(t, dir, recv.URL, "x=6", "y=7")
		if r := hookq(t, dir, "wait", id); r.code != 0 || r.stdout != "42\n" {
			t.Errorf("wait = exit %d, stdout %q; want 0 and 42", r.code, r.stdout)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		id := addTask(t, dir, "--in", "1h", recv.URL)
		if out := mustRun(t, dir, "cancel", id); out != "cancelled\n" {
			t.Errorf("cancel printed %q; want cancelled", out)
		}
		if r := hookq(t, dir, "wait", id); r.code != 1 || !strings.Contains(r.stderr, "cancelled") {
			t.Errorf("wait = exit %d, stderr %q; want 1 and cancelled", r.code, r.stderr)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		id := addTask(t, dir, "--in", "1h", recv.URL)
		r := hookq(t, dir, "wait", "--timeout", "100ms", id)
		if r.code != 1 || !strings.Contains(r.stderr, "timed out") ||
			!strings.Contains(r.stderr, "scheduled") {
			t.Errorf("wait --timeout = exit %d, stderr %q; want 1 and a timeout naming the state",
				r.code, r.stderr)
		}
	})
}

func TestServe_SecondServeFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startServe(t, dir)
	sockPath := filepath.Join(dir, socketFile)
	before, err := os.Lstat(sockPath)
	if err != nil {
		t.Fatal(err)
	}

	begin := time.Now()
	r := hookq(t, dir, "serve", "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "another hookq process holds") {
		t.Errorf("second serve = exit %d, stderr %q; want 1 saying another hookq process holds the store",
			r.code, r.stderr)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("second serve took %s to fail", d)
	}

	// The first server's socket is untouched, and still answers.
	if after, err := os.Lstat(sockPath); err != nil || !os.SameFile(before, after) {
		t.Errorf("the second serve replaced or removed the first's socket (%v)", err)
	}
	mustRun(t, dir, "stats")
}

func TestCLI_DirectMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)

	// With no server, add stores the task and ls, show and stats read it.
	id := addTask(t, dir, recv.URL, "x=3", "y=3")
	if out := mustRun(t, dir, "ls", "--state", "pending"); !strings.Contains(out, id) {
		t.Errorf("ls --state pending does not show %s:\n%s", id, out)
	}
	if task := showJSON(t, dir, id); task["state"] != "pending" {
		t.Errorf("state = %v; want pending", task["state"])
	}
	var stats struct{ Counts map[string]int }
	if err := json.Unmarshal([]byte(mustRun(t, dir, "stats", "--json")), &stats); err != nil ||
		stats.Counts["pending"] != 1 {
		t.Errorf("stats --json: %v %v; want one pending", stats, err)
	}

	// A wait without a server waits for one, which then runs the task.
	waiter := start(t, dir, "wait", id)
	waiter.log.waitFor(t, "no server is running", waiter.done)
	srv := startServe(t, dir)
	if code := waiter.wait(t); code != 0 || waiter.stdout.String() != "9\n" {
		t.Errorf("wait = exit %d, stdout %q; want 0 and 9", code, waiter.stdout.String())
	}
	srv.stop(t)
}

func TestServe_SIGTERMWithAttemptInFlight(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv, arrived := blockingServer(t)
	srv := startServe(t, dir, "--grace", "100ms")
	id := addTask(t, dir, recv.URL)
	select {
	case <-arrived:
	case <-time.After(patience):
		t.Fatal("the task's request never arrived")
	}

	// A long poll in flight must not hold the shutdown up.
	waiter := start(t, dir, "wait", id)
	srv.signal(t, syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Errorf("serve exited %d; want 0", code)
	}
	waiter.log.waitFor(t, "no server is running", waiter.done)

	// The cut-off attempt left the task to run again.
	if task := showJSON(t, dir, id); task["state"] != "pending" {
		t.Errorf("after shutdown the task is %v; want pending", task["state"])
	}
}

func TestServe_StaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServe(t, dir)
	id := addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/")
	srv.signal(t, syscall.SIGKILL)
	srv.wait(t)
	if _, err := os.Lstat(filepath.Join(dir, socketFile)); err != nil {
		t.Fatalf("no socket left by the killed server: %v", err)
	}

	// Commands see the dead socket for what it is.
	if out := mustRun(t, dir, "ls"); !strings.Contains(out, id) {
		t.Errorf("ls with a stale socket does not show %s:\n%s", id, out)
	}

	// A new server replaces it.
	srv = startServe(t, dir)
	srv.log.waitFor(t, "stale socket", srv.done)
	if out := mustRun(t, dir, "ls"); !strings.Contains(out, id) {
		t.Errorf("ls through the new server does not show %s:\n%s", id, out)
	}
	fi, err := os.Lstat(filepath.Join(dir, socketFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v (%v); want 0600", fi, err)
	}
	srv.stop(t)
}

func TestCLI_RetryCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startServe(t, dir)
	id := addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/")

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{"RetryNotFinal", []string{"retry", id}, 1, "", "not final"},
		{"Cancel", []string{"cancel", id}, 0, "cancelled\n", ""},
		{"CancelAgain", []string{"cancel", id}, 1, "", "already final"},
		{"Retry", []string{"retry", id}, 0, "pending\n", ""},
		{"Unknown", []string{"cancel", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 1, "", "not found"},
		{"BadID", []string{"retry", "nope"}, 2, "", "not a task ID"},
	}
	for _, tt := range tests {
		r := hookq(t, dir, tt.args...)
		if r.code != tt.code || r.stdout != tt.stdout || !strings.Contains(r.stderr, tt.inStderr) {
			t.Errorf("%s: hookq %v = exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q",
				tt.name, tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.inStderr)
		}
	}
}

func TestCLI_AddOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(body, []byte(`{"event": "signup"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "http://user:secret@127.0.0.1:1/hook"

	t.Run("Fields", func(t *testing.T) {
		id := addTask(t, dir, "--json", "@"+body, "--header", "X-Trace: abc", "-X", "put",
			"--at", "2099-01-02T03:04:05Z", "--max-attempts", "3", "--timeout", "5s",
			"--protocol", "plain", url, "tag=a", "tag=b", "n=007", "x=1.5")
		task := showJSON(t, dir, id)
		want := map[string]string{
			"method":       `"PUT"`,
			"json":         `{"event":"signup"}`,
			"headers":      `{"X-Trace":"abc"}`,
			"args":         `{"n":"007","tag":["a","b"],"x":1.5}`,
			"run_at":       `"2099-01-02T03:04:05Z"`,
			"max_attempts": `3`,
			"timeout":      `"5s"`,
			"protocol":     `"plain"`,
			"state":        `"scheduled"`,
		}
		for k, v := range want {
			if got, _ := json.Marshal(task[k]); string(got) != v {
				t.Errorf("%s = %s; want %s", k, got, v)
			}
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		r := hookqIn(t, dir, `[1, 2]`, "add", "--json", "-", url)
		if r.code != 0 {
			t.Fatalf("add --json - = exit %d: %s", r.code, r.stderr)
		}
		if task := showJSON(t, dir, strings.TrimSpace(r.stdout)); task["method"] != "POST" {
			t.Errorf("method = %v; want POST for a JSON body", task["method"])
		}
	})
	t.Run("Key", func(t *testing.T) {
		first := addTask(t, dir, "--key", "k1", "--in", "1h", url)
		if again := addTask(t, dir, "--key", "k1", "--in", "1h", url); again != first {
			t.Errorf("second add with key k1 made %s; want %s", again, first)
		}
	})
	t.Run("Redacted", func(t *testing.T) {
		out := mustRun(t, dir, "ls")
		if strings.Contains(out, "secret") || !strings.Contains(out, "xxxxx@127.0.0.1") {
			t.Errorf("ls shows userinfo:\n%s", out)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		r := hookq(t, dir, "add", "ftp://127.0.0.1/file")
		if r.code != 2 || !strings.Contains(r.stderr, "scheme") {
			t.Errorf("add ftp:// = exit %d, stderr %q; want 2 naming the scheme", r.code, r.stderr)
		}
	})
}

func TestCLI_UsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		inStderr string
	}{
		{"NoCommand", []string{"bogus"}, "unknown command"},
		{"UnknownFlag", []string{"ls", "--bogus"}, "unknown flag"},
		{"AddNoURL", []string{"add"}, "requires at least 1 arg"},
		{"AddBadArg", []string{"add", "http://127.0.0.1/", "novalue"}, "not key=value"},
		{"AddBadJSON", []string{"add", "--json", "{", "http://127.0.0.1/"}, "not valid JSON"},
		{"AddBadAt", []string{"add", "--at", "tomorrow", "http://127.0.0.1/"}, "RFC 3339"},
		{"AddInAndAt", []string{"add", "--in", "1m", "--at", "2030-01-01T00:00:00Z", "http://127.0.0.1/"},
			"together"},
		{"AddBadHeader", []string{"add", "-H", "nocolon", "http://127.0.0.1/"}, "Name: value"},
		{"ShowBadID", []string{"show", "nope"}, "not a task ID"},
		{"LsBadState", []string{"ls", "--state", "done"}, "unknown state"},
		{"LsBadLimit", []string{"ls", "--limit", "0"}, "not from 1 to 1000"},
		{"LsLimitOverMax", []string{"ls", "--limit", "1001"}, "not from 1 to 1000"},
		{"AddTooManyAttempts", []string{"add", "--max-attempts", "1001", "http://127.0.0.1/"},
			"--max-attempts 1001 is out of range"},
		{"AddTimeoutOverMax", []string{"add", "--timeout", "61m", "http://127.0.0.1/"},
			"--timeout 1h1m0s is out of range"},
		{"AddRepeatedHeader", []string{"add", "-H", "X-A: 1", "-H", "x-a: 2", "http://127.0.0.1/"},
			`--header "x-a" is given more than once`},
		{"AddInvalidTask", []string{"add", "-X", "BREW", "http://127.0.0.1/"}, "method"},
		{"HelpUnknown", []string{"help", "bogus"}, "unknown help topic"},
		{"WaitTwoIDs", []string{"wait", "a", "b"}, "wait takes one task ID, not 2 arguments"},
		{"ServeBadSecret", []string{"serve", "--signing-secret", "nope"}, "whsec_"},
		{"ServeBadLogFormat", []string{"serve", "--log-format", "xml"}, "text or json"},
		{"ServeNegativeWorkers", []string{"serve", "--workers", "-1"}, "negative"},
		{"ServeTooManyWorkers", []string{"serve", "--workers", "10001"}, "--workers 10001"},
		{"ServeTooManyAttempts", []string{"serve", "--max-attempts", "1001"}, "--max-attempts 1001"},
		{"ServeTimeoutOverMax", []string{"serve", "--timeout", "61m"}, "--timeout 1h1m0s"},
		{"ServeBackoffBaseOverCap", []string{"serve", "--backoff-base", "2m", "--backoff-cap", "1m"},
			"--backoff-base 2m0s is over --backoff-cap 1m0s"},
		{"ServePerHostOverWorkers", []string{"serve", "--workers", "4", "--per-host", "5"},
			"--per-host 5"},
		{"ServePerHostOverDefaultWorkers", []string{"serve", "--per-host", "129"}, "--per-host 129"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := hookq(t, t.TempDir(), tt.args...)
			if r.code != 2 || !strings.HasPrefix(r.stderr, "hookq: ") ||
				!strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("hookq %v = exit %d, stderr %q; want 2 and %q", tt.args, r.code, r.stderr, tt.inStderr)
			}
		})
	}
}

func TestCLI_NoStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nothing-here")
	for _, args := range [][]string{{"ls"}, {"stats"}, {"show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"wait", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}} {
		r := hookq(t, dir, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no queue in") {
			t.Errorf("hookq %v on an empty dir = exit %d, stderr %q; want 1 and no queue",
				args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("read commands created the data directory: %v", err)
	}
}

func TestCLI_DataFromEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := command("", "add", "--in", "1h", "http://127.0.0.1:1/")
	cmd.Args = []string{hookqBin, "add", "--in", "1h", "http://127.0.0.1:1/"}
	cmd.Env = append(cmd.Env, envData+"="+dir)
	if out, err := cmd.Output(); err != nil || !idRE.Match(out) {
		t.Fatalf("add with %s = %q, %v", envData, out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, storeFile)); err != nil {
		t.Errorf("no store in $%s: %v", envData, err)
	}
}

func TestCLI_Version(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if out := mustRun(t, t.TempDir(), args...); out != "hookq "+testVersion+"\n" {
			t.Errorf("hookq %v printed %q; want hookq %s", args, out, testVersion)
		}
	}
}
