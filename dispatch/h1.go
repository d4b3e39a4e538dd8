package dispatch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Transport carries plain-http requests over pooled HTTP/1.1
// connections. Each request runs on the caller's goroutine from start to
// end: it takes a connection, writes the request, reads the reply's
// headers and returns; the body is read from the connection directly, and
// closing it hands the connection back to the pool when the reply was read
// to its end. net/http's Transport runs two goroutines per connection and
// passes every request and reply between them through channels; for the
// small request and reply of a webhook that handing over cost about as
// much CPU as the request itself.
//
// https requests go to net/http's Transport (see splitTransport), which
// brings TLS and HTTP/2.
type h1Transport struct {
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	maxConns       int           // per host, dialling, in use and idle; 0: no cap
	maxIdle        int           // idle connections kept per host
	maxIdleTotal   int           // idle connections kept across hosts
	idleTimeout    time.Duration // an idle connection is closed after this
	maxHeaderBytes int64         // the most a reply's headers may take

	mu    sync.Mutex
	hosts map[string]*h1Host // by host:port
	// Every idle connection, of every host, oldest first, linked through
	// h1Conn.older and newer, so that the one idle longest can be closed
	// when there are maxIdleTotal.
	oldest, newest *h1Conn
	idleTotal      int
}

// h1Host is the pool of one host:port. Guarded by h1Transport.mu.
type h1Host struct {
	key     string
	idle    []*h1Conn      // oldest first; taken from the end
	open    int            // connections dialling, in use or idle
	waiters []chan *h1Conn // attempts waiting for a connection; nil means "dial one"
	sweeper *time.Timer    // closes connections idle too long; nil when none are idle
}

// h1Conn is one connection of the pool.
type h1Conn struct {
	t      *h1Transport
	host   *h1Host
	conn   net.Conn
	in     limitedReader // conn, with the header limit
	out    countingWriter
	br     *bufio.Reader
	bw     *bufio.Writer
	probe  *prober
	idleAt time.Time // when it was put back in the pool
	reused bool      // it carried a request before this one

	// Neighbours in the transport's list of idle connections, while idle.
	// Guarded by h1Transport.mu.
	older, newer *h1Conn
}

// Connection pool tuning of h1Transport.
const (
	// max1xx bounds the informational replies skipped before the final one.
	max1xx = 5
)

// errStaleConn reports a pooled connection that the server closed before
// the request reached it.
var errStaleConn = errors.New("connection closed by the server while idle")

// aLongTimeAgo is a deadline in the past, which aborts blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// newH1Transport returns an h1Transport that dials with dial.
func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error),
	maxConns, maxIdle int) *h1Transport {
	return &h1Transport{
		dial:           dial,
		maxConns:       maxConns,
		maxIdle:        maxIdle,
		maxIdleTotal:   maxIdleConns,
		idleTimeout:    idleConnTimeout,
		maxHeaderBytes: maxHeaderBytes,
		hosts:          make(map[string]*h1Host),
	}
}

// RoundTrip sends req, an http request, and returns the reply with its
// headers read. A request that fails on a reused connection before any of
// the reply arrived is sent again on another connection if that is safe:
// nothing of it was written, or its method is idempotent. As with
// net/http's Transport, this goes on until it fails on a new connection:
// a server that closed its idle connections together can leave several
// dead ones in the pool, each of which the check in get may pass. Every
// failure drops a connection, and the attempt's deadline bounds the rest.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := hostPort(req.URL.Host, "80")
	sent := req
	for {
		c, err := t.get(ctx, key)
		if err != nil {
			closeRequestBody(sent)
			return nil, err
		}
		// An attempt given up before it started, or while it waited for
		// c, sends nothing: the request could reach the server while the
		// attempt reports a cancellation. c is as good as it was, and
		// another attempt may have it as soon as it is back.
		if ctx.Err() != nil {
			t.put(c)
			closeRequestBody(sent)
			return nil, fmt.Errorf("send request: %w", context.Cause(ctx))
		}
		resp, err := c.roundTrip(ctx, sent)
		if err == nil {
			resp.Request = req
			return resp, nil
		}
		if !c.reused || !errors.Is(err, errStaleConn) ||
			(c.out.n > 0 && !idempotent(req)) {
			return nil, err
		}
		if sent, err = rewind(req); err != nil {
			return nil, err
		}
	}
}

// idempotent reports whether req may be sent twice without harm, as RFC
// 9110 9.2.2 has it for methods; the headers net/http also takes as a
// promise count too.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// rewind returns req ready to be sent again: with a fresh body if it had
// one.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, fmt.Errorf("send again: %w: the body cannot be read twice", errStaleConn)
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("send again: %w", err)
	}
	r := *req
	r.Body = body
	return &r, nil
}

// closeRequestBody closes the body of a request that will not be sent, as
// a RoundTripper must.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hostPort returns host with port added if it has none.
func hostPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, port)
}

// get returns a connection to key: an idle one if there is one, else a new
// one if the host is under its cap, else the first one freed, whichever
// comes before ctx is done.
func (t *h1Transport) get(ctx context.Context, key string) (*h1Conn, error) {
	for {
		t.mu.Lock()
		h := t.hosts[key]
		if h == nil {
			h = &h1Host{key: key}
			t.hosts[key] = h
		}
		if n := len(h.idle); n > 0 {
			c := h.idle[n-1]
			h.idle[n-1] = nil
			h.idle = h.idle[:n-1]
			t.unlinkIdle(c)
			t.mu.Unlock()
			// A server may close a connection while it sits in the pool:
			// look before sending on it (one system call that does not
			// wait). A close that races the request is left to RoundTrip.
			if time.Since(c.idleAt) >= t.idleTimeout || !c.probe.alive() {
				t.drop(c)
				continue
			}
			c.reused = true
			return c, nil
		}
		if t.maxConns <= 0 || h.open < t.maxConns {
			h.open++
			t.mu.Unlock()
			return t.connect(ctx, h)
		}
		wait := make(chan *h1Conn, 1)
		h.waiters = append(h.waiters, wait)
		t.mu.Unlock()

		select {
		case c := <-wait:
			if c == nil {
				return t.connect(ctx, h) // a slot was handed over
			}
			// Handed over as soon as its last reply was read: look, as
			// for an idle one, for what the server sent after that reply
			// or its close, which may sit in the socket past what was
			// read. The next request must not take it for its reply.
			if !c.probe.alive() {
				t.drop(c)
				continue
			}
			return c, nil
		case <-ctx.Done():
			t.mu.Lock()
			queued := removeWaiter(h, wait)
			t.mu.Unlock()
			if !queued {
				// Handed something as we gave up: pass it on.
				if c := <-wait; c != nil {
					t.put(c)
				} else {
					t.release(h)
				}
			}
			return nil, fmt.Errorf("wait for a connection to %s: %w", key, context.Cause(ctx))
		}
	}
}

// removeWaiter removes wait from h's waiters and reports whether it was
// there. Callers hold t.mu.
func removeWaiter(h *h1Host, wait chan *h1Conn) bool {
	for i, w := range h.waiters {
		if w == wait {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// connect dials a new connection for h, whose slot the caller has taken.
func (t *h1Transport) connect(ctx context.Context, h *h1Host) (*h1Conn, error) {
	conn, err := t.dial(ctx, "tcp", h.key)
	if err != nil {
		t.release(h)
		return nil, err
	}
	c := &h1Conn{t: t, host: h, conn: conn}
	c.in = limitedReader{r: conn, n: noLimit}
	c.out = countingWriter{w: conn}
	c.br = bufio.NewReaderSize(&c.in, 4<<10)
	c.bw = bufio.NewWriterSize(&c.out, 4<<10)
	c.probe = newProber(conn)
	return c, nil
}

// put returns a connection whose last reply was read to its end: to an
// attempt waiting for one, else to the idle pool.
func (t *h1Transport) put(c *h1Conn) {
	h := c.host
	t.mu.Lock()
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		t.mu.Unlock()
		c.reused = true
		w <- c
		return
	}
	if len(h.idle) >= t.maxIdle {
		h.open--
		t.forget(h)
		t.mu.Unlock()
		c.conn.Close()
		return
	}
	c.idleAt = time.Now()
	h.idle = append(h.idle, c)
	t.linkIdle(c)
	if h.sweeper == nil {
		h.sweeper = time.AfterFunc(t.idleTimeout, func() { t.sweep(h) })
	}
	// Too many idle in all: close the one idle longest, wherever it is.
	// It is also the oldest idle one of its host.
	var evicted *h1Conn
	if t.idleTotal > t.maxIdleTotal {
		evicted = t.oldest
		t.unlinkIdle(evicted)
		eh := evicted.host
		eh.idle[0] = nil
		eh.idle = eh.idle[1:]
		eh.open--
		t.forget(eh)
	}
	t.mu.Unlock()
	if evicted != nil {
		evicted.conn.Close()
	}
}

// linkIdle adds c, just put in its host's idle pool, to the newest end of
// the list of idle connections. Callers hold t.mu.
func (t *h1Transport) linkIdle(c *h1Conn) {
	c.older, c.newer = t.newest, nil
	if t.newest != nil {
		t.newest.newer = c
	} else {
		t.oldest = c
	}
	t.newest = c
	t.idleTotal++
}

// unlinkIdle removes c, just taken from its host's idle pool, from the
// list of idle connections. Callers hold t.mu.
func (t *h1Transport) unlinkIdle(c *h1Conn) {
	if c.older != nil {
		c.older.newer = c.newer
	} else {
		t.oldest = c.newer
	}
	if c.newer != nil {
		c.newer.older = c.older
	} else {
		t.newest = c.older
	}
	c.older, c.newer = nil, nil
	t.idleTotal--
}

// drop closes a connection that cannot carry another request and frees its
// slot.
func (t *h1Transport) drop(c *h1Conn) {
	c.conn.Close()
	t.release(c.host)
}

// release frees a connection slot of h: an attempt waiting for one dials.
func (t *h1Transport) release(h *h1Host) {
	t.mu.Lock()
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = h.waiters[1:]
		t.mu.Unlock()
		w <- nil // the slot passes to the waiter, which dials
		return
	}
	h.open--
	t.forget(h)
	t.mu.Unlock()
}

// forget removes h from the pool once it holds nothing. Callers hold t.mu.
func (t *h1Transport) forget(h *h1Host) {
	if h.open == 0 && len(h.waiters) == 0 && t.hosts[h.key] == h {
		delete(t.hosts, h.key)
		if h.sweeper != nil {
			h.sweeper.Stop()
			h.sweeper = nil
		}
	}
}

// sweep closes h's connections that have been idle for idleTimeout and
// comes back when the next one will have been.
func (t *h1Transport) sweep(h *h1Host) {
	now := time.Now()
	t.mu.Lock()
	var stale []*h1Conn
	for len(h.idle) > 0 && now.Sub(h.idle[0].idleAt) >= t.idleTimeout {
		stale = append(stale, h.idle[0])
		t.unlinkIdle(h.idle[0])
		h.idle[0] = nil
		h.idle = h.idle[1:]
		h.open--
	}
	h.sweeper = nil
	if len(h.idle) > 0 {
		h.sweeper = time.AfterFunc(t.idleTimeout-now.Sub(h.idle[0].idleAt), func() { t.sweep(h) })
	} else {
		t.forget(h)
	}
	t.mu.Unlock()
	for _, c := range stale {
		c.conn.Close()
	}
}

// CloseIdleConnections closes every idle connection.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*h1Conn
	for _, h := range t.hosts {
		for _, c := range h.idle {
			t.unlinkIdle(c)
		}
		idle = append(idle, h.idle...)
		h.open -= len(h.idle)
		h.idle = nil
		if h.sweeper != nil {
			h.sweeper.Stop()
			h.sweeper = nil
		}
		t.forget(h)
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// roundTrip sends req on c and reads the reply's headers. On error c is
// closed and its slot freed.
func (c *h1Conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	t := c.t
	deadline, _ := ctx.Deadline() // zero: none
	if err := c.conn.SetDeadline(deadline); err != nil {
		t.drop(c)
		return nil, fmt.Errorf("send request: %w", err)
	}
	// A cancelled attempt aborts the I/O under way.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
	fail := func(op string, err error) (*http.Response, error) {
		stop()
		t.drop(c)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}

	c.out.n = 0
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		if c.out.n == 0 {
			return fail("send request", fmt.Errorf("%w: %w", errStaleConn, err))
		}
		// A server may answer before it has read the whole request, a
		// 413 for a body too large, and close: the write fails, but the
		// reply may be there, and it is the server's verdict. The
		// connection goes once its body is read.
		if ctx.Err() == nil && !isTimeout(err) {
			c.in.n = t.maxHeaderBytes
			if resp, rerr := c.readHead(req); rerr == nil {
				return c.reply(resp, stop, false), nil
			}
		}
		return fail("send request", err)
	}

	// Nothing of a reply on a reused connection: the server closed it
	// before the request came, or as it came.
	c.in.n = t.maxHeaderBytes
	if _, err := c.br.Peek(1); err != nil {
		if c.reused && !isTimeout(err) {
			err = fmt.Errorf("%w: %w", errStaleConn, err)
		}
		return fail("read reply", err)
	}
	resp, err := c.readHead(req)
	if err != nil {
		return fail("read reply", err)
	}
	return c.reply(resp, stop, true), nil
}

// readHead reads the headers of the final reply to req, skipping
// informational ones, within the header limit that the caller set on c.in.
// It lifts the limit for the body.
func (c *h1Conn) readHead(req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			// The limit may also cut a line short, which then reads
			// as a malformed one: blame the limit.
			if errors.Is(err, errHeaderLimit) || c.in.n <= 0 {
				err = fmt.Errorf("reply headers over %d bytes", c.t.maxHeaderBytes)
			}
			return nil, err
		}
		code := resp.StatusCode
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			c.in.n = noLimit
			return resp, nil
		}
		if n == max1xx {
			return nil, fmt.Errorf("more than %d informational replies", max1xx)
		}
	}
}

// reply returns resp with its body wrapped to hand c back to the pool
// when closed, if reuse allows it and the reply does.
func (c *h1Conn) reply(resp *http.Response, stop func() bool, reuse bool) *http.Response {
	b := &h1Body{t: c.t, c: c, body: resp.Body, stop: stop,
		keep: reuse && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols}
	if resp.Body == http.NoBody {
		b.eof = true
	}
	resp.Body = b
	return resp
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// h1Body is the body of a reply read from an h1Conn. Closing it returns the
// connection to the pool if the body was read to its end, else closes it.
type h1Body struct {
	t      *h1Transport
	c      *h1Conn
	body   io.ReadCloser
	stop   func() bool // stops the cancellation of the connection's I/O
	keep   bool        // the reply allows the connection to be reused
	eof    bool
	closed bool
}

// errBodyClosed is returned by a read of a closed body.
var errBodyClosed = errors.New("read on a closed reply body")

func (b *h1Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// The connection is reused only if nothing can touch it any more: the
	// cancellation had not fired, the reply was read to its end and
	// nothing follows it.
	if b.stop() && b.keep && b.eof && b.c.br.Buffered() == 0 {
		// Clear the attempt's deadline: the probe of an idle connection
		// would fail once it passed, and the connection be thrown away
		// after idling for the attempt's timeout instead of idleTimeout.
		b.c.conn.SetDeadline(time.Time{})
		b.t.put(b.c)
	} else {
		b.t.drop(b.c)
	}
	return nil
}

// noLimit is a limitedReader's budget when no limit applies.
const noLimit = 1<<63 - 1

// errHeaderLimit is the error of a limitedReader past its budget.
var errHeaderLimit = errors.New("header limit reached")

// limitedReader reads from r until n bytes have been read, then fails with
// errHeaderLimit. Unlike io.LimitReader it says so instead of ending.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderLimit
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// countingWriter counts what it writes to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// splitTransport sends http requests through h1 and everything else (https)
// through std.
type splitTransport struct {
	h1  *h1Transport
	std *http.Transport
}

func (s *splitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		return s.h1.RoundTrip(req)
	}
	return s.std.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of both transports.
func (s *splitTransport) CloseIdleConnections() {
	s.h1.CloseIdleConnections()
	s.std.CloseIdleConnections()
}
