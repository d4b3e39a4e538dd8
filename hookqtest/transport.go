package hookqtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// remoteAddr is the client address handlers see: TEST-NET-1, as in
// net/http/httptest, since no connection exists.
const remoteAddr = "192.0.2.1:1234"

// Transport returns an http.RoundTripper that serves every request with h
// in the same process, whatever the request's host: no name is resolved
// and no socket is opened. Set it as dispatch.Options.Transport to send a
// queue's tasks to h; Open does so.
//
// h sees a request as a server would: RequestURI, Host, RemoteAddr (always
// 192.0.2.1:1234), TLS set for an https URL, and a context that is
// cancelled when the attempt's deadline passes or the reply's body is
// closed. The reply streams to the client as h writes it, so deadlines and
// body limits apply as they would on the network. A handler that panics
// fails the attempt as a dropped connection would. h should return once
// its request's context is done: a handler that never returns outlives
// the test.
func Transport(h http.Handler) http.RoundTripper {
	return handlerTransport{h: h}
}

type handlerTransport struct{ h http.Handler }

// RoundTrip runs the handler on its own goroutine and returns once it has
// written its reply's headers, or the request's context is done.
func (ht handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	sreq, err := serverRequest(ctx, req)
	if err != nil {
		cancel()
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &responseWriter{
		reqCtx:  req.Context(),
		header:  make(http.Header),
		head:    req.Method == http.MethodHead,
		body:    pw,
		headers: make(chan struct{}),
	}

	go func() {
		defer cancel() // as a server does when its handler returns
		defer sreq.Body.Close()
		defer func() { w.finish(recover()) }()
		ht.h.ServeHTTP(w, sreq)
	}()

	select {
	case <-w.headers:
	case <-req.Context().Done():
		// The handler's writes fail from now on, and its context is done.
		pr.CloseWithError(req.Context().Err())
		cancel()
		return nil, req.Context().Err()
	}
	if w.err != nil {
		pr.Close()
		cancel()
		return nil, w.err
	}
	resp := &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          http.NoBody,
		ContentLength: -1,
		Request:       req,
	}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		resp.ContentLength = n
	}
	if w.head {
		pr.Close()
		return resp, nil
	}

	// The request's deadline covers the body: once it passes, reading
	// fails with its error, as it would on a connection.
	stop := context.AfterFunc(req.Context(), func() { pw.CloseWithError(req.Context().Err()) })
	resp.Body = &responseBody{PipeReader: pr, cancel: cancel, stop: stop}
	return resp, nil
}

// serverRequest returns req as a server would hand it to a handler.
func serverRequest(ctx context.Context, req *http.Request) (*http.Request, error) {
	if req.URL == nil {
		return nil, errors.New("hookqtest: request without URL")
	}
	target := req.URL.RequestURI()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("hookqtest: request target %q: %w", target, err)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	sreq := &http.Request{
		Method:        req.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        req.Header.Clone(),
		Body:          req.Body,
		ContentLength: req.ContentLength,
		Host:          host,
		RemoteAddr:    remoteAddr,
		RequestURI:    target,
	}
	if sreq.Method == "" {
		sreq.Method = http.MethodGet
	}
	if sreq.Header == nil {
		sreq.Header = make(http.Header)
	}
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	if req.URL.Scheme == "https" {
		sreq.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true,
			ServerName: req.URL.Hostname()}
	}
	return sreq.WithContext(ctx), nil
}

// responseWriter is the http.ResponseWriter handed to the handler. The
// body goes through a pipe to the client, which reads it as it comes.
type responseWriter struct {
	reqCtx context.Context // the client's: done when it gives up
	header http.Header
	head   bool // a HEAD request: the body is discarded
	body   *io.PipeWriter

	mu      sync.Mutex    // guards the fields below against Flush and finish
	wrote   bool          // the headers are sent
	status  int           // set before headers is closed
	sent    http.Header   // the headers as sent; set before headers is closed
	err     error         // the handler failed before sending headers
	headers chan struct{} // closed when the headers are sent, or err is set
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sends the status and headers. Informational codes (1xx) are
// not replies; a second call is ignored, as net/http does.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("hookqtest: invalid WriteHeader code %d", code))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeader(code)
}

func (w *responseWriter) writeHeader(code int) {
	if w.wrote || code < 200 {
		return
	}
	w.wrote = true
	w.status = code
	w.sent = w.header.Clone()
	close(w.headers)
}

// Write sends p as part of the body, sending the headers first if they
// are not yet, with a sniffed Content-Type as net/http does.
func (w *responseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if !w.wrote {
		if w.header.Get("Content-Type") == "" && len(p) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.writeHeader(http.StatusOK)
	}
	status := w.status
	w.mu.Unlock()

	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified:
		return 0, http.ErrBodyNotAllowed
	case w.head:
		return len(p), nil
	}
	return w.body.Write(p)
}

// Flush sends the headers if they are not yet; the body is never held back.
func (w *responseWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeader(http.StatusOK)
}

// finish ends the reply once the handler has returned: with a 200 and no
// body if it wrote nothing, or as a dropped connection if it panicked.
func (w *responseWriter) finish(panicked any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if panicked == nil {
		// A handler that returns because the client gave up has not
		// finished its reply: the client reads the reason, not an end.
		w.writeHeader(http.StatusOK)
		w.body.CloseWithError(w.reqCtx.Err())
		return
	}
	err := fmt.Errorf("hookqtest: handler panicked: %v", panicked)
	if errors.Is(asError(panicked), http.ErrAbortHandler) {
		err = errors.New("hookqtest: handler aborted the reply")
	}
	if !w.wrote {
		w.err = err
		w.wrote = true
		close(w.headers)
	}
	w.body.CloseWithError(err)
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}

// responseBody is the reply's body as the client reads it. Closing it
// cancels the handler's context, as a closed connection would.
type responseBody struct {
	*io.PipeReader
	cancel context.CancelFunc // the handler's context
	stop   func() bool        // the deadline's watch on the pipe
}

func (b *responseBody) Close() error {
	b.stop()
	b.cancel()
	return b.PipeReader.Close()
}
