package dispatch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connServer is a loopback test server that counts the connections it
// accepted, those open now and the most open at once.
type connServer struct {
	*httptest.Server
	accepted atomic.Int64
	open     atomic.Int64
	peak     atomic.Int64
}

func newConnServer(t *testing.T, reply http.HandlerFunc) *connServer {
	t.Helper()
	s := &connServer{}
	s.Server = httptest.NewUnstartedServer(reply)
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			s.accepted.Add(1)
			n := s.open.Add(1)
			for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond for up to 5 s, for effects the server sees after
// the client has moved on (a closed connection).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestH1_ReusesConnections(t *testing.T) {
	t.Parallel()
	srv := newConnServer(t, success)
	d, _ := newTestDispatcher(t, Options{})
	for i := range 20 {
		method := []string{"GET", "POST", "HEAD", "PUT"}[i%4]
		out := d.Do(t.Context(), &Request{URL: srv.URL, Method: method,
			Args: map[string][]string{"i": {"1"}}})
		if method == "HEAD" {
			wantOutcome(t, out, Failed, KindInvalidResponse) // no body to read
			continue
		}
		wantOutcome(t, out, Succeeded, "")
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("20 attempts one after the other opened %d connections; want 1", n)
	}
}

func TestH1_MaxConnsPerHost(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int64
	srv := newConnServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(10 * time.Millisecond)
		inFlight.Add(-1)
		success(w, r)
	})
	d, _ := newTestDispatcher(t, Options{MaxConnsPerHost: 3})
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
		})
	}
	wg.Wait()
	if p := srv.peak.Load(); p > 3 {
		t.Errorf("%d connections open at once; want at most 3", p)
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("%d requests in flight at most; want 3", p)
	}
}

// TestH1_WaiterGivesUp: an attempt that waits for a connection over the cap
// ends at its deadline, and the slot it waited for is not lost.
func TestH1_WaiterGivesUp(t *testing.T) {
	t.Parallel()
	unblock := make(chan struct{})
	srv := newConnServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-unblock
		}
		success(w, r)
	})
	d, _ := newTestDispatcher(t, Options{MaxConnsPerHost: 1})
	slow := make(chan Outcome)
	go func() { slow <- d.Do(t.Context(), &Request{URL: srv.URL + "/slow"}) }()
	eventually(t, "slow request started", func() bool { return srv.open.Load() == 1 })

	out := d.Do(t.Context(), &Request{URL: srv.URL, Timeout: 50 * time.Millisecond})
	wantOutcome(t, out, Retry, KindTimeout)
	close(unblock)
	wantOutcome(t, <-slow, Succeeded, "")
	for range 3 {
		wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL, Timeout: time.Second}), Succeeded, "")
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("opened %d connections; want 1", n)
	}
}

// oneShotServer answers one request per connection, then closes it
// without saying so (no Connection: close), as a server whose keep-alive
// timeout is very short does.
func oneShotServer(t *testing.T, served *atomic.Int64) string {
	return rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		served.Add(1)
		body := `{"status":"success","retval":1}`
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n"+body)
	})
}

// TestH1_ServerClosedIdleConnection: a connection the server closed while
// it was idle is not used again, whatever the method.
func TestH1_ServerClosedIdleConnection(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	base := oneShotServer(t, &served)
	d, log := newTestDispatcher(t, Options{})
	tr := d.client.Transport.(*splitTransport).h1
	for i, method := range []string{"GET", "POST", "POST", "GET", "PUT"} {
		out := d.Do(t.Context(), &Request{URL: base + "/hook", Method: method,
			Args: map[string][]string{"x": {"1"}}})
		wantOutcome(t, out, Succeeded, "")
		if got := served.Load(); got != int64(i+1) {
			t.Fatalf("after %d attempts the server answered %d", i+1, got)
		}
		eventually(t, "server's close seen", func() bool { return idleClosed(tr) })
	}
	if n := len(log.all()); n != 5 {
		t.Errorf("dialled %d times; want 5 (one per attempt)", n)
	}
}

// TestH1_StaleConnectionRace: when the close comes only as the request is
// sent, an idempotent request is sent again on a new connection.
func TestH1_StaleConnectionRace(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	base := oneShotServer(t, &served)
	d, _ := newTestDispatcher(t, Options{})
	tr := d.client.Transport.(*splitTransport).h1

	// The first attempt leaves an idle connection that the server closes.
	wantOutcome(t, d.Do(t.Context(), &Request{URL: base}), Succeeded, "")
	eventually(t, "server closed", func() bool { return idleClosed(tr) })
	// Skip the probe: pretend the close raced it.
	tr.mu.Lock()
	for _, h := range tr.hosts {
		for _, c := range h.idle {
			c.probe = &prober{}
		}
	}
	tr.mu.Unlock()
	wantOutcome(t, d.Do(t.Context(), &Request{URL: base}), Succeeded, "")
	if got := served.Load(); got != 2 {
		t.Errorf("server answered %d requests; want 2", got)
	}
}

// idleClosed reports whether tr holds idle connections and the server has
// closed every one of them.
func idleClosed(tr *h1Transport) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, h := range tr.hosts {
		for _, c := range h.idle {
			if c.probe.alive() {
				return false
			}
			n++
		}
	}
	return n > 0
}

func TestH1_ConnectionNotReused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply http.HandlerFunc
	}{{
		name: "ConnectionClose",
		reply: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			success(w, r)
		},
	}, {
		name: "BodyNotReadToItsEnd",
		reply: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, strings.Repeat("x", 64<<10)) // past the drained 8 KiB
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newConnServer(t, tt.reply)
			d, _ := newTestDispatcher(t, Options{})
			for range 3 {
				d.Do(t.Context(), &Request{URL: srv.URL})
			}
			if n := srv.accepted.Load(); n != 3 {
				t.Errorf("3 attempts opened %d connections; want 3", n)
			}
			eventually(t, "connections closed", func() bool { return srv.open.Load() == 0 })
		})
	}
}

func TestH1_InformationalReplies(t *testing.T) {
	t.Parallel()
	base := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n"+`{"status":"success","retval":7}`)
		}
	})
	d, _ := newTestDispatcher(t, Options{})
	for range 2 {
		out := d.Do(t.Context(), &Request{URL: base})
		wantOutcome(t, out, Succeeded, "")
		if string(out.Result) != "7" {
			t.Errorf("Result = %s; want 7", out.Result)
		}
	}

	endless := rawServer(t, func(c net.Conn) {
		if readRequest(c) {
			for {
				if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
					return
				}
			}
		}
	})
	out := d.Do(t.Context(), &Request{URL: endless, Timeout: 5 * time.Second})
	wantOutcome(t, out, Retry, KindTransport)
	wantMessage(t, out, "informational")
}

// TestH1_IdleTimeout: a connection idle for the idle timeout is closed.
func TestH1_IdleTimeout(t *testing.T) {
	t.Parallel()
	srv := newConnServer(t, success)
	d, _ := newTestDispatcher(t, Options{})
	tr := d.client.Transport.(*splitTransport).h1
	tr.idleTimeout = 50 * time.Millisecond
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
	eventually(t, "idle connection closed", func() bool { return srv.open.Load() == 0 })
	tr.mu.Lock()
	hosts := len(tr.hosts)
	tr.mu.Unlock()
	if hosts != 0 {
		t.Errorf("the pool remembers %d hosts with no connection; want 0", hosts)
	}
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
}

func TestH1_CloseIdleConnections(t *testing.T) {
	t.Parallel()
	srv := newConnServer(t, success)
	d, _ := newTestDispatcher(t, Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "") })
	}
	wg.Wait()
	d.Close()
	eventually(t, "idle connections closed", func() bool { return srv.open.Load() == 0 })
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
}

// TestH1_CancelDropsConnection: an attempt cancelled while it waits for the
// reply leaves no connection behind that could deliver its reply to the
// next attempt.
func TestH1_CancelDropsConnection(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := newConnServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			time.Sleep(200 * time.Millisecond)
			io.WriteString(w, `{"status":"success","retval":"late"}`)
			return
		}
		io.WriteString(w, `{"status":"success","retval":"second"}`)
	})
	d, _ := newTestDispatcher(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	wantOutcome(t, d.Do(ctx, &Request{URL: srv.URL}), Retry, KindTransport)
	out := d.Do(t.Context(), &Request{URL: srv.URL})
	wantOutcome(t, out, Succeeded, "")
	if string(out.Result) != `"second"` {
		t.Errorf("Result = %s; want \"second\"", out.Result)
	}
}

func TestHostPort(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"example.test":      "example.test:80",
		"example.test:8080": "example.test:8080",
		"127.0.0.1":         "127.0.0.1:80",
		"[::1]":             "[::1]:80",
		"[::1]:81":          "[::1]:81",
	} {
		if got := hostPort(in, "80"); got != want {
			t.Errorf("hostPort(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestH1_ReuseAfterAttemptDeadline: a connection that idled past the
// deadline of the attempt it last carried is still reused. The deadline
// belongs to that attempt; left on the connection, it made the check of
// the idle connection fail, so every attempt that came later than the
// previous one's timeout dialled again.
func TestH1_ReuseAfterAttemptDeadline(t *testing.T) {
	t.Parallel()
	srv := newConnServer(t, success)
	d, _ := newTestDispatcher(t, Options{Timeout: 250 * time.Millisecond})
	for i := range 3 {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // past the last attempt's deadline
		}
		wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("3 attempts, each after the previous one's deadline, opened %d connections; want 1", n)
	}
}

// TestH1_StaleConnectionsRace: when several pooled connections were closed
// by the server and each close races the request sent on it, an idempotent
// request goes on to another connection until it reaches the server, as
// with net/http's Transport, rather than failing after one more try. A
// server that closes its idle connections on a timer leaves many such
// connections in the pool at once.
func TestH1_StaleConnectionsRace(t *testing.T) {
	t.Parallel()
	// The first n requests are answered together, so that they leave n
	// idle connections; each connection is closed after its one reply.
	const n = 3
	var served atomic.Int64
	all := make(chan struct{})
	base := rawServer(t, func(c net.Conn) {
		if !readRequest(c) {
			return
		}
		if served.Add(1) == n {
			close(all)
		}
		<-all
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n"+
			`{"status":"success","retval":1}`)
	})
	d, _ := newTestDispatcher(t, Options{})
	tr := d.client.Transport.(*splitTransport).h1
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { wantOutcome(t, d.Do(t.Context(), &Request{URL: base}), Succeeded, "") })
	}
	wg.Wait()
	idle := func() []*h1Conn {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		var all []*h1Conn
		for _, h := range tr.hosts {
			all = append(all, h.idle...)
		}
		return all
	}
	if k := len(idle()); k != n {
		t.Fatalf("%d idle connections; want %d", k, n)
	}
	eventually(t, "server closed", func() bool {
		for _, c := range idle() {
			if c.probe.alive() {
				return false
			}
		}
		return true
	})
	// Skip the probes: pretend every close raced the request.
	for _, c := range idle() {
		c.probe = &prober{}
	}
	wantOutcome(t, d.Do(t.Context(), &Request{URL: base}), Succeeded, "")
	if got := served.Load(); got != n+1 {
		t.Errorf("server answered %d requests; want %d", got, n+1)
	}
}

// TestH1_ReplyBeforeBodyRead: a server that answers before it has read the
// whole request, and closes, is heard: a 413 for a body too large fails the
// task as net/http's Transport reports it, instead of a write error that
// would have the task retried, its body sent again each time.
func TestH1_ReplyBeforeBodyRead(t *testing.T) {
	t.Parallel()
	// Larger than what the socket buffers of both ends take in, so that
	// the write blocks until the server closes.
	body := []byte(`"` + strings.Repeat("a", 16<<20) + `"`)
	tests := []struct {
		name  string
		serve func(c net.Conn)
	}{{
		// Reset: the close comes with the body unread.
		name: "Close",
		serve: func(c net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\n"+
				"Connection: close\r\nContent-Length: 9\r\n\r\ntoo large")
		},
	}, {
		// As net/http's server does: half-close, read on for a while,
		// then close.
		name: "CloseWrite",
		serve: func(c net.Conn) {
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\n"+
				"Connection: close\r\nContent-Length: 9\r\n\r\ntoo large")
			c.(*net.TCPConn).CloseWrite()
			io.CopyN(io.Discard, br, 256<<10)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := rawServer(t, tt.serve)
			d, _ := newTestDispatcher(t, Options{})
			out := d.Do(t.Context(), &Request{URL: base, Method: "POST", JSON: body})
			wantOutcome(t, out, Failed, KindHTTP)
			if out.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("StatusCode = %d; want 413", out.StatusCode)
			}
		})
	}
}

// TestH1_LeftoverBytesHandedOver: bytes a server sent after the end of its
// reply (a body on a HEAD reply, a Content-Length too short) that are in
// the socket, though not yet in the read buffer, are never read as the
// reply of the attempt the connection is handed to next. Here the reply
// fills the read buffer to the byte, so the leftover stays in the socket,
// and an attempt waits for the one connection allowed.
func TestH1_LeftoverBytesHandedOver(t *testing.T) {
	t.Parallel()
	first := `{"status":"success","retval":"first"}`
	head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(first)) + "\r\nX-Pad: "
	pad := 4<<10 - len(head) - len("\r\n\r\n") - len(first)
	reply := head + strings.Repeat("p", pad) + "\r\n\r\n" + first
	if len(reply) != 4<<10 {
		t.Fatalf("reply is %d bytes; want %d, the read buffer's size", len(reply), 4<<10)
	}
	leftover := "HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n" + `{"status":"success","retval":"junk"}`
	second := `{"status":"success","retval":"second"}`

	requests := make(chan struct{}, 2)
	answer := make(chan struct{})
	var n atomic.Int64
	base := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			requests <- struct{}{}
			if n.Add(1) == 1 {
				<-answer
				io.WriteString(c, reply+leftover)
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(second))+"\r\n\r\n"+second)
		}
	})
	d, _ := newTestDispatcher(t, Options{MaxConnsPerHost: 1})
	tr := d.client.Transport.(*splitTransport).h1
	outs := make(chan Outcome, 2)
	go func() { outs <- d.Do(t.Context(), &Request{URL: base}) }()
	<-requests
	go func() { outs <- d.Do(t.Context(), &Request{URL: base}) }()
	eventually(t, "second attempt waiting", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, h := range tr.hosts {
			return len(h.waiters) == 1
		}
		return false
	})
	close(answer)
	results := map[string]bool{}
	for range 2 {
		out := <-outs
		wantOutcome(t, out, Succeeded, "")
		results[string(out.Result)] = true
	}
	if !results[`"first"`] || !results[`"second"`] {
		t.Errorf("results %v; want \"first\" and \"second\"", results)
	}
}

// TestH1_HeaderLimit: reply headers of exactly maxHeaderBytes are read;
// one byte more fails the attempt with a message that says so, wherever
// the limit falls, even between the CR and LF of the blank line.
func TestH1_HeaderLimit(t *testing.T) {
	t.Parallel()
	body := `{"status":"success","retval":1}`
	// head returns reply headers of exactly size bytes.
	head := func(size int) string {
		start := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
		var b strings.Builder
		b.WriteString(start)
		for rest := size - len(start) - len("\r\n"); rest > 0; {
			n := min(rest, 1000)
			if rest-n > 0 && rest-n < 8 {
				n -= 8 // leave room for one more whole line
			}
			b.WriteString("X: " + strings.Repeat("a", n-len("X: \r\n")) + "\r\n")
			rest -= n
		}
		b.WriteString("\r\n")
		return b.String()
	}
	for _, size := range []int{maxHeaderBytes, maxHeaderBytes + 1, maxHeaderBytes + 2, maxHeaderBytes + 1000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			reply := head(size)
			if len(reply) != size {
				t.Fatalf("headers are %d bytes; want %d", len(reply), size)
			}
			base := rawServer(t, func(c net.Conn) {
				if readRequest(c) {
					io.WriteString(c, reply+body)
				}
			})
			d, _ := newTestDispatcher(t, Options{})
			out := d.Do(t.Context(), &Request{URL: base})
			if size <= maxHeaderBytes {
				wantOutcome(t, out, Succeeded, "")
				return
			}
			wantOutcome(t, out, Retry, KindTransport)
			wantMessage(t, out, "reply headers over 262144 bytes")
		})
	}
}

// TestH1_IdleAcrossHosts: the pool keeps at most maxIdleTotal idle
// connections across all hosts, as net/http's Transport keeps
// MaxIdleConns, closing the one idle longest to make room. A queue that
// calls thousands of hosts would otherwise hold a connection to each for
// the idle timeout.
func TestH1_IdleAcrossHosts(t *testing.T) {
	t.Parallel()
	const keep, hosts = 3, 5
	d, _ := newTestDispatcher(t, Options{})
	tr := d.client.Transport.(*splitTransport).h1
	tr.maxIdleTotal = keep
	var srvs []*connServer
	for range hosts {
		srv := newConnServer(t, success)
		srvs = append(srvs, srv)
		wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
	}
	// The first ones called are closed; the last ones kept.
	for i, srv := range srvs {
		want := int64(0)
		if i >= hosts-keep {
			want = 1
		}
		eventually(t, "connections closed", func() bool { return srv.open.Load() == want })
	}
	tr.mu.Lock()
	idle := 0
	for _, h := range tr.hosts {
		idle += len(h.idle)
	}
	known := len(tr.hosts)
	tr.mu.Unlock()
	if idle != keep || known != keep {
		t.Errorf("pool holds %d idle connections to %d hosts; want %d and %d", idle, known, keep, keep)
	}
	// A kept one is reused.
	last := srvs[hosts-1]
	wantOutcome(t, d.Do(t.Context(), &Request{URL: last.URL}), Succeeded, "")
	if n := last.accepted.Load(); n != 1 {
		t.Errorf("the last host accepted %d connections; want 1", n)
	}
}

// TestH1_CancelledBeforeSend: an attempt whose context is done before it
// starts sends nothing, even with an idle connection at hand, as with
// net/http's Transport; that connection stays in the pool. A request sent
// for an attempt already given up would reach the endpoint while the
// attempt reports a cancellation, and so be delivered twice.
func TestH1_CancelledBeforeSend(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := newConnServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		success(w, r)
	})
	d, _ := newTestDispatcher(t, Options{})
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 50 {
		out := d.Do(ctx, &Request{URL: srv.URL, Method: "POST"})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "cancelled")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the server got %d requests; want 1, none of the cancelled attempts", n)
	}
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("opened %d connections; want 1", n)
	}

	// Under load, the connection put back goes on at once to another
	// attempt, which must have it to itself.
	calls.Store(0)
	d, _ = newTestDispatcher(t, Options{MaxConnsPerHost: 2})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				if g%2 == 0 {
					wantOutcome(t, d.Do(ctx, &Request{URL: srv.URL}), Retry, KindTransport)
				} else {
					wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
				}
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 4*50 {
		t.Errorf("the server got %d requests; want %d, those of the attempts not cancelled", n, 4*50)
	}
}

// TestH1_Storm: many attempts at once against a server that closes each
// idle connection at a random moment, some of them cancelled, with the
// idle connections closed now and then from our side too. No attempt may
// succeed unless the server got its request, no POST may reach it twice,
// no GET may fail but by its cancellation, every other failure is a Retry,
// and afterwards the pool accounts for exactly the connections open, and
// MaxConnsPerHost attempts at once all get through.
func TestH1_Storm(t *testing.T) {
	t.Parallel()
	const perHost = 8
	var mu sync.Mutex
	seen := map[string]int{} // method and webhook-id: requests received
	var stable atomic.Bool   // stop closing idle connections
	base := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			// A new connection gets its request soon: wait long. An idle
			// one is closed after 0-5ms.
			idle := time.Duration(rand.Int64N(int64(5 * time.Millisecond)))
			if n == 0 || stable.Load() {
				idle = 5 * time.Second
			}
			c.SetReadDeadline(time.Now().Add(idle))
			if _, err := br.Peek(1); err != nil {
				return
			}
			c.SetReadDeadline(time.Time{})
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			mu.Lock()
			seen[req.Method+" "+req.Header.Get("Webhook-Id")]++
			mu.Unlock()
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n"+
				`{"status":"success","retval":1}`); err != nil {
				return
			}
		}
	})
	d, _ := newTestDispatcher(t, Options{MaxConnsPerHost: perHost})
	tr := d.client.Transport.(*splitTransport).h1
	var open atomic.Int64 // connections dialled and not closed
	dial := d.dialAddr
	d.dialAddr = func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		open.Add(1)
		return &closeCounter{Conn: c, open: &open}, nil
	}

	type result struct {
		method, id string
		cancelled  bool
		out        Outcome
	}
	results := make(chan result, 32*20)
	stop := make(chan struct{})
	var closer sync.WaitGroup
	closer.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				d.Close()
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 20 {
				r := result{method: []string{"GET", "POST"}[i%2], id: fmt.Sprintf("%d-%d", g, i)}
				ctx, cancel := context.WithCancel(t.Context())
				if rand.IntN(8) == 0 {
					time.AfterFunc(time.Duration(rand.Int64N(int64(2*time.Millisecond))), cancel)
				}
				r.out = d.Do(ctx, &Request{ID: r.id, URL: base, Method: r.method,
					Args: url.Values{"x": {"1"}}})
				r.cancelled = ctx.Err() != nil
				cancel()
				results <- r
			}
		})
	}
	wg.Wait()
	close(stop)
	closer.Wait()
	close(results)

	mu.Lock()
	for r := range results {
		n := seen[r.method+" "+r.id]
		switch {
		case r.out.Verdict == Succeeded && n == 0:
			t.Errorf("%s %s succeeded; the server never got it", r.method, r.id)
		case r.method == "POST" && n > 1:
			t.Errorf("POST %s reached the server %d times", r.id, n)
		case r.out.Verdict == Failed:
			t.Errorf("%s %s failed for good: %v", r.method, r.id, r.out.Err)
		case r.out.Verdict == Retry && r.method == "GET" && !r.cancelled:
			t.Errorf("GET %s: %v", r.id, r.out.Err)
		}
	}
	mu.Unlock()

	tr.mu.Lock()
	inPool := 0
	for _, h := range tr.hosts {
		inPool += h.open
		if len(h.waiters) > 0 {
			t.Errorf("%d attempts still waiting", len(h.waiters))
		}
	}
	tr.mu.Unlock()
	if n := open.Load(); int64(inPool) != n {
		t.Errorf("the pool counts %d connections; %d are open", inPool, n)
	}

	stable.Store(true)
	for range perHost {
		wg.Go(func() {
			wantOutcome(t, d.Do(t.Context(), &Request{URL: base, Timeout: 5 * time.Second}), Succeeded, "")
		})
	}
	wg.Wait()
}

// closeCounter is a connection that counts itself out of open when first
// closed.
type closeCounter struct {
	net.Conn
	once sync.Once
	open *atomic.Int64
}

func (c *closeCounter) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}
