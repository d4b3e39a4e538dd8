package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

const cliToken = "Zm9vYmFyYmF6cXV4cXV1eHF1dXg"

// checkToken checks that srv wants cliToken on TCP but not on its socket.
func checkToken(t *testing.T, dir string, srv *server) {
	t.Helper()
	status, header, body := srv.tcpGet(t, "/v1/stats", "")
	if status != http.StatusUnauthorized || !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET /v1/stats without the token = %d %s, WWW-Authenticate %q; want 401 Bearer",
			status, body, header.Get("WWW-Authenticate"))
	}
	if status, _, body := srv.tcpGet(t, "/metrics", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token = %d %s; want 401", status, body)
	}
	if status, _, body := srv.tcpGet(t, "/v1/stats", cliToken); status != http.StatusOK {
		t.Errorf("GET /v1/stats with the token = %d %s; want 200", status, body)
	}
	if status, _, body := srv.tcpGet(t, "/healthz", ""); status != http.StatusOK {
		t.Errorf("GET /healthz without the token = %d %s; want 200", status, body)
	}
	// The commands use the socket: they need nothing.
	id := addTask(t, dir, "http://127.0.0.1:1/", "--in", "1h")
	if out := mustRun(t, dir, "ls"); !strings.Contains(out, id) {
		t.Errorf("ls does not show %s:\n%s", id, out)
	}
}

func TestServe_TokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeTestFile(t, "token", cliToken+"\n", 0o600)
	srv := startServe(t, dir, "--token-file", file)
	checkToken(t, dir, srv)
	if logs := srv.log.String(); strings.Contains(logs, cliToken) {
		t.Errorf("the log shows the token:\n%s", logs)
	}
}

// TestServe_TokenEnv sets the environment of the whole test binary, so it
// does not run in parallel with the others.
func TestServe_TokenEnv(t *testing.T) {
	t.Setenv(envToken, cliToken)
	dir := t.TempDir()
	srv := startServe(t, dir)
	checkToken(t, dir, srv)

	// Both sources at once are refused rather than one picked.
	file := writeTestFile(t, "token", cliToken, 0o600)
	if r := hookq(t, t.TempDir(), "serve", "--token-file", file); r.code != 2 ||
		!strings.Contains(r.stderr, "use one") {
		t.Errorf("serve with --token-file and $%s = exit %d, stderr %q; want 2", envToken, r.code, r.stderr)
	}
}

func TestServe_TokenRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, token, want string
	}{
		{"Short", "abc\n", "at least 16"},
		{"Empty", "", "at least 16"},
		{"Space", "0123456789 abcdef", "character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := writeTestFile(t, "token", tc.token, 0o600)
			r := hookq(t, t.TempDir(), "serve", "--token-file", file)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("serve with token %q = exit %d, stderr %q; want 2 and %q", tc.token, r.code, r.stderr, tc.want)
			}
		})
	}
	r := hookq(t, t.TempDir(), "serve", "--token-file", filepath.Join(t.TempDir(), "missing"))
	if r.code != 2 || !strings.Contains(r.stderr, "--token-file") {
		t.Errorf("serve with a missing token file = exit %d, stderr %q; want 2", r.code, r.stderr)
	}
}

func TestServe_TokenFileReadableByOthers(t *testing.T) {
	t.Parallel()
	file := writeTestFile(t, "token", cliToken, 0o644)
	srv := startServe(t, t.TempDir(), "--token-file", file)
	srv.log.waitFor(t, "can be read by other users", srv.done)
}
