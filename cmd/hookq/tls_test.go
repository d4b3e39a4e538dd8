package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServe_CAFile: an https endpoint with a certificate of its own CA
// fails with a TLS error (no insecure fallback) until the server trusts
// that CA with --ca-file.
func TestServe_CAFile(t *testing.T) {
	t.Parallel()
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","retval":"over tls"}`)
	}))
	defer recv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw})
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// One attempt only, so that the failure is final and can be retried.
	dir := t.TempDir()
	srv := startServe(t, dir)
	id := addTask(t, dir, "--max-attempts", "1", recv.URL+"/hook")
	r := hookq(t, dir, "wait", id)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "certificate") {
		t.Errorf("wait for a task to an untrusted endpoint: exit %d, %s%s; want 1 and a "+
			"certificate error", r.code, r.stdout, r.stderr)
	}
	if task := showJSON(t, dir, id); fmt.Sprint(task["error"]) == "" ||
		!strings.Contains(fmt.Sprint(task["error"]), "transport") {
		t.Errorf("error of the task = %v; want a transport error", task["error"])
	}
	srv.stop(t)

	srv = startServe(t, dir, "--ca-file", caFile)
	mustRun(t, dir, "retry", id)
	if out := mustRun(t, dir, "wait", id); out != "\"over tls\"\n" {
		t.Errorf("wait printed %q; want the endpoint's result", out)
	}
	srv.stop(t)

	// A file with no certificate in it is a usage error.
	if r := hookq(t, dir, "serve", "--ca-file", filepath.Join(dir, storeFile)); r.code != 2 ||
		!strings.Contains(r.stderr, "no PEM certificate") {
		t.Errorf("serve with a bad --ca-file: exit %d, %s", r.code, r.stderr)
	}
}
