package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitSocket waits until the server p answers on the socket of dir, for a
// server that logs nothing to wait for.
func waitSocket(t *testing.T, dir string, p *process) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !socketAnswers(filepath.Join(dir, socketFile)) {
		select {
		case <-p.done:
			t.Fatalf("serve exited %d before it answered:\n%s", p.code, p.log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer on its socket within %s", patience)
		}
	}
}

func TestServe_LogFormats(t *testing.T) {
	t.Parallel()
	recv := multiplyServer(t)

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := start(t, dir, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
		p.log.waitFor(t, `"msg":"serving"`, p.done)
		mustRun(t, dir, "add", "--wait", recv.URL+"/multiply", "x=6", "y=7")
		if code := (&server{process: p}).stop(t); code != 0 {
			t.Fatalf("serve exited %d", code)
		}

		// Every line is a JSON object; the finished task has one line.
		var finished []map[string]any
		for _, line := range strings.Split(p.log.String(), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line is not JSON: %q: %v", line, err)
			}
			if m["msg"] == "task finished" {
				finished = append(finished, m)
			}
		}
		if len(finished) != 1 {
			t.Fatalf("task finished lines = %v; want 1", finished)
		}
		f := finished[0]
		if f["level"] != "INFO" || f["outcome"] != "succeeded" || f["retval"] != "42" ||
			f["attempts"] != 1.0 || f["method"] != "GET" || f["task_id"] == nil {
			t.Errorf("task finished line = %v", f)
		}
	})

	t.Run("TextAtWarnIsQuiet", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := start(t, dir, "serve", "--listen", "127.0.0.1:0", "--log-level", "warn")
		waitSocket(t, dir, p)
		mustRun(t, dir, "add", "--wait", recv.URL+"/multiply", "x=6", "y=7")
		if code := (&server{process: p}).stop(t); code != 0 {
			t.Fatalf("serve exited %d", code)
		}
		if logs := p.log.String(); logs != "" {
			t.Errorf("serve --log-level warn logged:\n%s", logs)
		}
	})

	t.Run("TextAtDebug", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		srv := startServe(t, dir, "--log-level", "debug")
		mustRun(t, dir, "add", "--wait", recv.URL+"/multiply", "x=6", "y=7")
		line := srv.log.waitFor(t, `msg="task finished"`, srv.done)
		for _, want := range []string{"level=INFO", "outcome=succeeded", "retval=42", "attempts=1"} {
			if !strings.Contains(line, want) {
				t.Errorf("task finished line %q lacks %q", line, want)
			}
		}
		srv.log.waitFor(t, `msg="http request"`, srv.done) // Debug lines show
	})

	t.Run("BadLevel", func(t *testing.T) {
		t.Parallel()
		r := hookq(t, t.TempDir(), "serve", "--log-level", "loud")
		if r.code != 2 || !strings.Contains(r.stderr, "debug, info, warn or error") {
			t.Errorf("serve --log-level loud = exit %d, stderr %q; want 2", r.code, r.stderr)
		}
	})
}
