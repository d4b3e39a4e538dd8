package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServe_HostileClients holds many connections open on the API, some
// idle and some trickling a request's headers (slowloris), and checks
// that the server goes on answering others: the unix socket whatever
// happens on TCP, and TCP itself while the flood is under the connection
// cap.
func TestServe_HostileClients(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServe(t, dir)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		return c
	}
	// Idle connections, and slow ones that send part of a request.
	for range 100 {
		dial()
	}
	for range 100 {
		io.WriteString(dial(), "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n")
	}
	// A body far over the limit is refused without being read whole.
	big := dial()
	io.WriteString(big, "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
		"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{\"url\":\"")
	io.WriteString(big, strings.Repeat("a", 3<<20))
	big.SetReadDeadline(time.Now().Add(patience))
	reply, _ := io.ReadAll(big)
	if !strings.Contains(string(reply), "413") {
		t.Errorf("a body over the limit got %q; want 413", firstLine(string(reply)))
	}

	client := &http.Client{Timeout: patience}
	resp, err := client.Get("http://" + srv.addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz during the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz during the flood: %s", resp.Status)
	}
	mustRun(t, dir, "stats")

	// Past the connection cap, TCP clients wait in the backlog, but the
	// socket, which the CLI uses, still answers.
	for range maxConns {
		dial()
	}
	mustRun(t, dir, "stats")
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
