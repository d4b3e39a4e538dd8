package dispatch

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawServer accepts connections on loopback and hands each to serve, which
// plays an endpoint that does not follow HTTP. The listener and every
// connection are closed when the test ends.
func rawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// readRequest reads one request with its body from c.
func readRequest(c net.Conn) bool {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err == nil
}

// TestDispatcher_Do_HostileEndpoints runs attempts against endpoints that
// break HTTP on purpose. Each attempt must end within its deadline with a
// verdict that says what happened, never hang or succeed.
func TestDispatcher_Do_HostileEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		serve   func(c net.Conn)
		verdict Verdict
		kind    string
		message string
	}{{
		name: "ResetAfterReadingTheBody",
		serve: func(c net.Conn) {
			if readRequest(c) {
				c.(*net.TCPConn).SetLinger(0) // close with RST
			}
		},
		verdict: Retry, kind: KindTransport,
	}, {
		name: "ClosedBeforeAnswering",
		serve: func(c net.Conn) {
			readRequest(c)
		},
		verdict: Retry, kind: KindTransport,
	}, {
		name: "EndlessHeaders",
		serve: func(c net.Conn) {
			if !readRequest(c) {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			line := "X-Filler: " + strings.Repeat("a", 1000) + "\r\n"
			for {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		},
		verdict: Retry, kind: KindTransport, message: "header",
	}, {
		name: "HeadersTrickle",
		serve: func(c net.Conn) {
			if !readRequest(c) {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			for {
				if _, err := io.WriteString(c, "X: y\r\n"); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		},
		verdict: Retry, kind: KindTimeout,
	}, {
		name: "NotHTTP",
		serve: func(c net.Conn) {
			if readRequest(c) {
				io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
			}
		},
		verdict: Retry, kind: KindTransport,
	}, {
		name: "LyingContentLength",
		serve: func(c net.Conn) {
			if readRequest(c) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+
					`{"status":"success","retval":1}`)
			}
		},
		verdict: Retry, kind: KindTransport,
	}, {
		name: "SilentAfterConnect",
		serve: func(c net.Conn) {
			io.Copy(io.Discard, c) // reads the request, never answers
		},
		verdict: Retry, kind: KindTimeout,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := rawServer(t, tt.serve)
			d, _ := newTestDispatcher(t, Options{Timeout: time.Second})
			start := time.Now()
			out := d.Do(t.Context(), &Request{URL: base + "/hook", Method: "POST",
				Args: url.Values{"x": {"1"}}})
			wantOutcome(t, out, tt.verdict, tt.kind)
			if tt.message != "" {
				wantMessage(t, out, tt.message)
			}
			// Generous: the point is that the attempt ends, not how fast.
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("attempt took %s", d)
			}
		})
	}
}

// TestDispatcher_Do_SlowTLSHandshake: a server that accepts the connection
// but never completes the handshake fails the attempt at its deadline with
// a timeout, and a server with a certificate the dispatcher does not trust
// fails with a TLS error: there is no insecure fallback to plain HTTP or to
// an unverified connection.
func TestDispatcher_Do_SlowTLSHandshake(t *testing.T) {
	t.Parallel()
	t.Run("NoServerHello", func(t *testing.T) {
		t.Parallel()
		url := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: strings.Replace(url, "http:", "https:", 1),
			Timeout: 500 * time.Millisecond})
		wantOutcome(t, out, Retry, KindTimeout)
	})
	t.Run("UntrustedCertificate", func(t *testing.T) {
		t.Parallel()
		srv := newTLSRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"status":"success","retval":1}`))
		})
		d, _ := newTestDispatcher(t, Options{TLSConfig: &tls.Config{}})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "certificate")
		if n := len(srv.requests()); n != 0 {
			t.Errorf("the endpoint got %d requests over an untrusted connection", n)
		}
	})
}
