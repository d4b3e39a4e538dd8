package dispatch

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// evidenceBytes is how much of a reply body an Outcome keeps.
	evidenceBytes = 1 << 10

	// drainBytes is how much more of a non-2xx body is read, and dropped,
	// so that a short reply leaves its connection reusable.
	drainBytes = 8 << 10

	// maxPooledBuffer is the largest body buffer put back in bodyBuffers.
	// A larger one, grown for a rare large body, is left to the garbage
	// collector rather than held for replies that are nearly all small.
	maxPooledBuffer = 64 << 10
)

// bodyBuffers holds the *bytes.Buffer that reply bodies are read into. Every
// attempt reads a body, and io.ReadAll allocated and grew a fresh buffer for
// each. Nothing of a body outlives readReply but copies (ParseReply copies
// what it keeps), so the buffer goes back as soon as the Outcome is built.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBodyBuffer returns buf to bodyBuffers, unless it grew too large.
func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledBuffer {
		return
	}
	buf.Reset()
	bodyBuffers.Put(buf)
}

// attempt holds the contexts of one attempt, to tell why it stopped.
type attempt struct {
	parent  context.Context // the caller's
	ctx     context.Context // parent plus the attempt's deadline
	timeout time.Duration
}

// failure classifies an error that ended the attempt before a verdict. stage
// names what was under way if a reply had come ("reading the body").
func (a attempt) failure(err error, stage string) Outcome {
	if stage != "" {
		stage = " " + stage
	}
	var redirect *redirectError
	var netErr net.Error
	switch {
	case a.parent.Err() != nil || pastDeadline(a.parent):
		return retry(KindTransport, fmt.Sprintf("attempt cancelled%s: %v",
			stage, context.Cause(a.parent)))
	case errors.Is(err, ErrRefused):
		return Outcome{Verdict: Failed, Err: &Error{Kind: KindRefused, Message: errorText(err)}}
	case errors.As(err, &redirect):
		return Outcome{Verdict: Failed, Err: &Error{Kind: KindTransport, Message: redirect.msg}}
	case a.ctx.Err() != nil || pastDeadline(a.ctx):
		return retry(KindTimeout, fmt.Sprintf("attempt timed out after %s%s", a.timeout, stage))
	case errors.As(err, &netErr) && netErr.Timeout():
		return retry(KindTimeout, errorText(err))
	}
	return retry(KindTransport, errorText(err))
}

// pastDeadline reports whether ctx's deadline has passed. A connection's
// I/O deadline, set to the context's, may fire a moment before the
// context's own timer does.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// retry is a Retry outcome with an error of the given kind.
func retry(kind, msg string) Outcome {
	return Outcome{Verdict: Retry, Err: &Error{Kind: kind, Message: msg}}
}

// errorText is err's message without the method-and-URL prefix that the
// HTTP client adds: the URL is the task's own, and may be long.
func errorText(err error) string {
	var u *url.Error
	if errors.As(err, &u) {
		err = u.Err
	}
	return clip(err.Error())
}

// readReply reads the reply resp and turns it into an Outcome. Only a 2xx
// body is read in full, up to the limit; of any other, the evidence will do.
func (d *Dispatcher) readReply(a attempt, p Protocol, resp *http.Response) Outcome {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)

	code := resp.StatusCode
	if code < 200 || code > 299 {
		out := statusOutcome(code)
		// A 101 hands over the connection: there is no body to read. A body
		// that stalls holds the attempt until its deadline, but the verdict
		// stays the status's.
		if code >= 200 {
			evidence, _, _ := readBody(resp, evidenceBytes, buf)
			out.Body = bytes.Clone(evidence)
			io.CopyN(io.Discard, resp.Body, drainBytes)
		}
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			out.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.now(),
				d.opts.MaxRetryAfter)
		}
		return out
	}

	// A 2xx body: read it whole, but never more than the limit.
	body, over, err := readBody(resp, d.opts.MaxBodyBytes, buf)
	var out Outcome
	switch {
	case err != nil:
		out = bodyFailure(a, err)
	case over:
		out = Outcome{Verdict: Failed, Err: &Error{Kind: KindTooLarge,
			Message: fmt.Sprintf("body is over %d bytes", d.opts.MaxBodyBytes)}}
	default:
		out = ParseReply(p, body)
	}
	out.StatusCode = code
	out.Body = bytes.Clone(body[:min(len(body), evidenceBytes)])
	if out.Err != nil {
		out.Err.StatusCode = code
	}
	return out
}

// bodyFailure is the Outcome of a 2xx reply whose body could not be read:
// the reply's fault if it cannot be decompressed, else the network's.
func bodyFailure(a attempt, err error) Outcome {
	var decode *decodeError
	if errors.As(err, &decode) {
		return Outcome{Verdict: Failed, Err: &Error{Kind: KindInvalidResponse,
			Message: "invalid response: " + errorText(decode.err)}}
	}
	return a.failure(err, "reading the body")
}

// statusOutcome is the Outcome of a reply whose status is not 2xx: 408, 425,
// 429 and 5xx may pass and are retried; anything else fails the task.
func statusOutcome(code int) Outcome {
	msg := "HTTP " + strconv.Itoa(code)
	if text := http.StatusText(code); text != "" {
		msg += " " + text
	}
	out := Outcome{
		Verdict:    Failed,
		Err:        &Error{Kind: KindHTTP, Message: msg, StatusCode: code},
		StatusCode: code,
	}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, 500 <= code && code <= 599:
		out.Verdict = Retry
	}
	return out
}

// decodeError is a body that cannot be decompressed: the reply is at fault,
// not the network.
type decodeError struct {
	err error
}

func (e *decodeError) Error() string { return "decode body: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// netReader remembers the error of the network side of a body, so that a
// failure of the gzip reader above it can be blamed on the right party.
type netReader struct {
	r   io.Reader
	err error
}

func (n *netReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if err != nil && err != io.EOF {
		n.err = err
	}
	return k, err
}

// blame returns the network's error if it had one, else err as a
// decodeError.
func (n *netReader) blame(err error) error {
	if n.err != nil {
		return n.err
	}
	return &decodeError{err}
}

// readBody reads resp's body, gunzipped if so encoded, up to limit bytes,
// into buf, which it resets; the body it returns is buf's. It reports
// whether the body went on beyond the limit. It never holds more than
// limit+1 bytes of the body, however well it compresses.
func readBody(resp *http.Response, limit int64, buf *bytes.Buffer) ([]byte, bool, error) {
	buf.Reset()
	raw := &netReader{r: resp.Body}
	var r io.Reader = raw
	if isGzip(resp.Header.Get("Content-Encoding")) {
		zr, err := gzip.NewReader(raw)
		switch {
		case err == io.EOF:
			return nil, false, nil // no body at all, as for HEAD
		case err != nil:
			return nil, false, raw.blame(err)
		}
		defer zr.Close()
		r = zr
	}

	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	body := buf.Bytes()
	if err != nil {
		return body, false, raw.blame(err)
	}
	if int64(len(body)) > limit {
		return body[:limit], true, nil
	}
	return body, false, nil
}

// isGzip reports whether a Content-Encoding value means gzip.
func isGzip(encoding string) bool {
	e := strings.TrimSpace(encoding)
	return strings.EqualFold(e, "gzip") || strings.EqualFold(e, "x-gzip")
}

// parseRetryAfter reads a Retry-After value, in seconds or as an HTTP date,
// as a delay from now no longer than limit. It returns 0 for a missing,
// malformed or past value.
func parseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			return limit
		case err != nil:
			return 0
		case secs > uint64(limit/time.Second):
			return limit
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), limit)
}
