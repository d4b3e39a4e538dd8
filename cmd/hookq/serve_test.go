package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestServe_GuardFlags(t *testing.T) {
	t.Parallel()
	recv := multiplyServer(t)

	t.Run("DenyPrivateRefusesLoopback", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		startServe(t, dir, "--deny-private")
		r := hookq(t, dir, "add", "--wait", recv.URL+"/multiply", "x=2", "y=3")
		if r.code != 1 || !strings.Contains(r.stderr, "refused") {
			t.Errorf("add --wait = exit %d, stderr %q; want 1 and a refusal", r.code, r.stderr)
		}
	})
	t.Run("AllowOverridesDenial", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		startServe(t, dir, "--deny-private", "--allow", "127.0.0.0/8")
		r := hookq(t, dir, "add", "--wait", recv.URL+"/multiply", "x=2", "y=3")
		if r.code != 0 || r.stdout != "6\n" {
			t.Errorf("add --wait = exit %d, stdout %q, stderr %q; want 6", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("BadCIDR", func(t *testing.T) {
		t.Parallel()
		r := hookq(t, t.TempDir(), "serve", "--allow", "10.0.0.0")
		if r.code != 2 || !strings.Contains(r.stderr, "CIDR") {
			t.Errorf("serve --allow 10.0.0.0 = exit %d, stderr %q; want 2", r.code, r.stderr)
		}
	})
}

func TestServe_SecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	dir := t.TempDir()
	recv := multiplyServer(t)
	srv := startServe(t, dir, "--signing-secret", secret, "--log-level", "debug")
	url := strings.Replace(recv.URL, "http://", "http://user:hunter2@", 1) + "/multiply"
	if r := hookq(t, dir, "add", "--wait", url, "x=1", "y=1"); r.code != 0 {
		t.Fatalf("add --wait = exit %d, stderr %q", r.code, r.stderr)
	}
	out := mustRun(t, dir, "ls") + mustRun(t, dir, "ls", "--json")
	srv.stop(t)
	logs := srv.log.String()
	for _, leak := range []string{secret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hunter2"} {
		if strings.Contains(logs, leak) {
			t.Errorf("server log contains %q:\n%s", leak, logs)
		}
		if strings.Contains(out, leak) {
			t.Errorf("ls output contains %q", leak)
		}
	}
}

func TestServe_ListensBeforeDispatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var requests atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, `{"status":"success","retval":1}`)
	}))
	t.Cleanup(recv.Close)

	// Tasks wait in the store for a server.
	var ids []string
	for range 10 {
		ids = append(ids, addTask(t, dir, recv.URL))
	}

	// A server whose port is taken fails, and sends none of them.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := hookq(t, dir, "serve", "--listen", busy.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, "listen") {
		t.Errorf("serve on a busy port = exit %d, stderr %q; want 1 and a listen error",
			r.code, r.stderr)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the receiver got %d requests from a server that could not serve; want 0", n)
	}
	if _, err := os.Lstat(filepath.Join(dir, socketFile)); !os.IsNotExist(err) {
		t.Errorf("the failed server left its socket: %v", err)
	}
	for _, id := range ids {
		if task := showJSON(t, dir, id); task["state"] != "pending" || task["attempts"] != 0.0 {
			t.Errorf("task %s = %v with %v attempts; want pending with none",
				id, task["state"], task["attempts"])
		}
	}
}
