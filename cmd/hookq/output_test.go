package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// bidiControls are the characters that reorder text on a terminal.
const bidiControls = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

// controlChar finds, in text meant for a terminal, a control character
// other than the newlines between lines, a bidi control, or a byte that is
// not UTF-8.
func controlChar(s string) (rune, bool) {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return r, true
		}
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || strings.ContainsRune(bidiControls, r) {
			return r, true
		}
	}
	return 0, false
}

func TestCLI_EscapesControlCharacters(t *testing.T) {
	t.Parallel()
	const reason = "bad\x1b]0;pwned\x07\r\nhookq: all good\x7f\u009b2J \u202eexe.txt"
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]string{"status": "failure", "reason": reason})
		w.Write(b)
	}))
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	startServe(t, dir)
	url := recv.URL + "/x#\u009b2J\u2066"

	// The failure on stderr.
	r := hookq(t, dir, "add", "--wait", "--key", "k\u0085\x1b[2J\u202e", "-H", "X-Note: a\u009bb",
		url, "arg=\x1b[31mred\u0090")
	if r.code != 1 {
		t.Fatalf("add --wait = exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	if c, ok := controlChar(r.stderr); ok || !strings.Contains(r.stderr, `bad\x1b]0;pwned\a\r\n`) {
		t.Errorf("add --wait stderr %q has control character %q or lacks the escaped reason", r.stderr, c)
	}
	var tasks []struct{ ID string }
	if err := json.Unmarshal([]byte(mustRun(t, dir, "ls", "--json")), &tasks); err != nil ||
		len(tasks) != 1 {
		t.Fatalf("ls --json = %v, %v; want one task", tasks, err)
	}
	id := tasks[0].ID

	// The text of show and ls, and the failure of wait.
	outputs := map[string]string{
		"show": mustRun(t, dir, "show", id),
		"ls":   mustRun(t, dir, "ls"),
		"wait": hookq(t, dir, "wait", id).stderr,
	}
	for name, out := range outputs {
		if c, ok := controlChar(out); ok {
			t.Errorf("%s prints control character %q:\n%s", name, c, out)
		}
	}
	for _, want := range []string{`k\u0085\x1b[2J\u202e`, `X-Note: a\u009bb`,
		`\u001b[31mred\u0090`, `#\u009b2J\u2066`, `hookq: all good\x7f\u009b2J \u202eexe.txt`} {
		if !strings.Contains(outputs["show"], want) {
			t.Errorf("show lacks %q:\n%s", want, outputs["show"])
		}
	}

	// JSON keeps the data as it is.
	task := showJSON(t, dir, id)
	if msg := task["error"].(map[string]any)["message"]; msg != reason {
		t.Errorf("show --json error message = %q; want %q", msg, reason)
	}
	if key := task["key"]; key != "k\u0085\x1b[2J\u202e" {
		t.Errorf("show --json key = %q; want it unescaped", key)
	}
}

func TestShow_HidesCredentialHeaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	headers := map[string]string{
		"Authorization":  "Bearer s3cr3t-1",
		"Cookie":         "session=s3cr3t-2",
		"X-Api-Key":      "s3cr3t-3",
		"X-Auth-Token":   "s3cr3t-4",
		"X-Hub-Secret":   "s3cr3t-5",
		"X-Password":     "s3cr3t-6",
		"X-Apikey":       "s3cr3t-7",
		"X-Signing-Key":  "s3cr3t-8",
		"X-Request-Note": "visible",
	}
	args := []string{"--in", "1h"}
	for k, v := range headers {
		args = append(args, "-H", k+": "+v)
	}
	id := addTask(t, dir, append(args, "http://127.0.0.1:1/")...)

	out := mustRun(t, dir, "show", id)
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("show prints a credential header's value:\n%s", out)
	}
	for _, want := range []string{"Authorization: xxxxx", "X-Api-Key: xxxxx",
		"X-Request-Note: visible"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	got, _ := json.Marshal(showJSON(t, dir, id)["headers"])
	want, _ := json.Marshal(headers)
	if string(got) != string(want) {
		t.Errorf("show --json headers = %s; want %s", got, want)
	}
}

func TestShow_AttemptsAfterRetry(t *testing.T) {
	t.Parallel()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "down")
	}))
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	srv := startServe(t, dir, "--backoff-base", "1ms", "--backoff-cap", "1ms")

	// Two attempts, a retry, two more.
	id := addTask(t, dir, "--max-attempts", "2", recv.URL)
	if r := hookq(t, dir, "wait", id); r.code != 1 {
		t.Fatalf("wait = exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	mustRun(t, dir, "retry", id)
	if r := hookq(t, dir, "wait", id); r.code != 1 {
		t.Fatalf("wait after retry = exit %d, stderr %q; want 1", r.code, r.stderr)
	}

	want := regexp.MustCompile(`(?m)^Attempts: +4 \(2 since the last retry, at most 2\)$`)
	if out := mustRun(t, dir, "show", id); !want.MatchString(out) {
		t.Errorf("show through the server does not match %s:\n%s", want, out)
	}
	srv.stop(t)
	if out := mustRun(t, dir, "show", id); !want.MatchString(out) {
		t.Errorf("show from the store does not match %s:\n%s", want, out)
	}
}

func TestAdd_KeyMatchNote(t *testing.T) {
	t.Parallel()
	for _, withServer := range []bool{false, true} {
		dir := t.TempDir()
		if withServer {
			startServe(t, dir)
		}
		first := hookq(t, dir, "add", "--in", "1h", "--key", "order-7", "http://127.0.0.1:1/")
		if first.code != 0 || first.stderr != "" {
			t.Fatalf("first add = exit %d, stderr %q; want 0 and nothing", first.code, first.stderr)
		}
		again := hookq(t, dir, "add", "--in", "1h", "--key", "order-7", "http://127.0.0.1:1/")
		id := strings.TrimSpace(first.stdout)
		want := "hookq: key order-7 matched existing task " + id + "; nothing added\n"
		if again.code != 0 || again.stdout != first.stdout || again.stderr != want {
			t.Errorf("server %t: second add = exit %d, stdout %q, stderr %q; want 0, %q, %q",
				withServer, again.code, again.stdout, again.stderr, first.stdout, want)
		}
	}
}

func TestCLI_ExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"InvalidScheme", []string{"add", "ftp://127.0.0.1/file"}, 2, "scheme"},
		{"InvalidMethod", []string{"add", "-X", "BREW", "http://127.0.0.1/"}, 2, "method"},
		{"ProtectedHeader", []string{"add", "-H", "Host: x", "http://127.0.0.1/"}, 2, "Host"},
		{"TooManyAttempts", []string{"add", "--max-attempts", "1001", "http://127.0.0.1/"}, 2,
			"max-attempts"},
		{"LimitOverMax", []string{"ls", "--limit", "1001"}, 2, "limit"},
		{"LimitAtMax", []string{"ls", "--limit", "1000"}, 0, ""},
		{"NotFound", []string{"show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 1, "not found"},
	}
	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			addTask(t, dir, "--in", "1h", "http://127.0.0.1:1/")
			if mode == "Server" {
				startServe(t, dir)
			}
			for _, tt := range tests {
				r := hookq(t, dir, tt.args...)
				if r.code != tt.code || !strings.Contains(r.stderr, tt.inStderr) {
					t.Errorf("%s: hookq %v = exit %d, stderr %q; want %d and %q",
						tt.name, tt.args, r.code, r.stderr, tt.code, tt.inStderr)
				}
			}
		})
	}
}

// TestCLI_MasksCredentialsInQueryAndArgs: query parameters and arguments
// named like credentials are shown as xxxxx in human output and in the
// server's log, as headers are; --json keeps the data as stored.
func TestCLI_MasksCredentialsInQueryAndArgs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)
	srv := startServe(t, dir)
	id := addTask(t, dir, recv.URL+"/multiply?api_key=QSECRET&x=2", "y=3", "password=ARGSECRET")
	mustRun(t, dir, "wait", id)
	for _, args := range [][]string{{"ls"}, {"show", id}} {
		out := mustRun(t, dir, args...)
		if strings.Contains(out, "QSECRET") || strings.Contains(out, "ARGSECRET") ||
			!strings.Contains(out, "xxxxx") {
			t.Errorf("hookq %s shows a credential:\n%s", args[0], out)
		}
	}
	if out := mustRun(t, dir, "show", "--json", id); !strings.Contains(out, "QSECRET") {
		t.Errorf("show --json lost the stored query:\n%s", out)
	}
	srv.stop(t)
	if log := srv.log.String(); strings.Contains(log, "QSECRET") || !strings.Contains(log, "api_key=xxxxx") {
		t.Errorf("the server's log shows a credential, or no task line:\n%s", log)
	}
}
