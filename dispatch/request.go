package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookq/hookq/internal/redact"
)

// Request describes one attempt of a task. Do only reads it.
type Request struct {
	// ID is the task's ID, sent as webhook-id. It stays the same across
	// retries so that receivers can drop duplicate deliveries.
	ID string

	// Method is the HTTP method, upper case. Empty means GET.
	Method string

	// URL is the absolute http or https URL to call.
	URL string

	// Args are the task's arguments. For GET and HEAD, and for every method
	// when JSON is set, they are merged into the URL's query. For other
	// methods they are the form-encoded body. Keys are sent in sorted order;
	// a key with several values is repeated.
	Args url.Values

	// JSON, if not nil, is sent as the body with Content-Type
	// application/json.
	JSON []byte

	// Header holds extra headers. Those that belong to hookq or to the
	// transport (Host, Content-Length, User-Agent, Accept-Encoding,
	// webhook-*, hop-by-hop headers, and Content-Type when there is a body)
	// are silently dropped.
	Header http.Header

	// Protocol says how to read a 2xx reply. Empty means Celery.
	Protocol Protocol

	// Timeout is the attempt's one total deadline. Zero means
	// Options.Timeout.
	Timeout time.Duration

	// Time is the attempt's time, sent as webhook-timestamp and signed.
	// Zero means now.
	Time time.Time
}

// Content types of the bodies we send.
const (
	contentTypeForm = "application/x-www-form-urlencoded"
	contentTypeJSON = "application/json"
)

// Header names we set ourselves, in canonical form.
const (
	headerWebhookID        = "Webhook-Id"
	headerWebhookTimestamp = "Webhook-Timestamp"
	headerWebhookSignature = "Webhook-Signature"
)

// newRequest builds the HTTP request of r, headers and signature included,
// bound to ctx.
func (d *Dispatcher) newRequest(ctx context.Context, r *Request) (*http.Request, error) {
	// Check what the caller should have checked: sending a request the
	// transport rejects would only be retried forever.
	if !r.Protocol.Valid() {
		return nil, fmt.Errorf("build request: unknown protocol %q", clip(string(r.Protocol)))
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return nil, fmt.Errorf("build request: invalid method %q", clip(method))
	}
	u, err := redact.ParseURL(r.URL) // its error hides a password
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("build request: URL must be absolute http or https")
	}
	if err := validHeader(r.Header); err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}

	// Place the arguments: in the query, or as a form body.
	var body []byte
	var contentType string
	switch {
	case r.JSON != nil:
		body, contentType = r.JSON, contentTypeJSON
		u.RawQuery = mergeQuery(u.RawQuery, r.Args)
	case method == http.MethodGet || method == http.MethodHead:
		u.RawQuery = mergeQuery(u.RawQuery, r.Args)
	default:
		if enc := r.Args.Encode(); enc != "" {
			body, contentType = []byte(enc), contentTypeForm
		}
	}

	// A bytes.Reader gives an exact Content-Length, and GetBody for 307
	// and 308 redirects.
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}

	// User headers first, then ours, which they cannot replace. Ours share
	// one array of values, where Header.Set would allocate one per header.
	// Their names are canonical already and each slice is capped, so that
	// a later Add cannot write into its neighbour: set(k, v) is
	// Header.Set(k, v).
	copyUserHeader(req.Header, r.Header, len(body) > 0)
	ours := make([]string, 0, 6) // all we ever set
	set := func(k, v string) {
		ours = append(ours, v)
		req.Header[k] = ours[len(ours)-1 : len(ours) : len(ours)]
	}
	if contentType != "" {
		set("Content-Type", contentType)
	}
	set("User-Agent", d.opts.UserAgent)
	set("Accept-Encoding", "gzip")
	ts := r.Time
	if ts.IsZero() {
		ts = d.now()
	}
	set(headerWebhookID, r.ID)
	set(headerWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(d.keys) > 0 {
		set(headerWebhookSignature, d.signature(r.ID, ts, signedPayload(req, body)))
	}
	return req, nil
}

// signedPayload is what the signature covers: for GET and HEAD, which never
// carry a body, the request target as sent (path and query); for the other
// methods the body as sent, empty or not, as Standard Webhooks says.
func signedPayload(req *http.Request, body []byte) []byte {
	if signsTarget(req.Method) {
		return []byte(req.URL.RequestURI())
	}
	return body
}

// signsTarget reports whether requests of method sign their target rather
// than their body.
func signsTarget(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// mergeQuery merges args into the raw query of a URL. The query's own
// parameters are kept as written, in their order, except those whose key
// args set; args follow, encoded with sorted keys.
func mergeQuery(raw string, args url.Values) string {
	if len(args) == 0 {
		return raw
	}
	if raw == "" {
		return args.Encode() // the usual URL, without a query of its own
	}
	var parts []string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			if _, ok := args[k]; ok {
				continue
			}
		}
		parts = append(parts, part)
	}
	if enc := args.Encode(); enc != "" {
		parts = append(parts, enc)
	}
	return strings.Join(parts, "&")
}

// copyUserHeader adds the user's headers in src to dst, leaving out those
// that hookq or the transport own. Content-Type is the user's only when
// there is no body.
func copyUserHeader(dst, src http.Header, hasBody bool) {
	for k, vs := range src {
		k = http.CanonicalHeaderKey(k)
		if isProtectedHeader(k) || (hasBody && k == "Content-Type") {
			continue
		}
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}

// isProtectedHeader reports whether the canonical header name k belongs to
// hookq or the transport.
func isProtectedHeader(k string) bool {
	switch k {
	case "Host", "Content-Length", "User-Agent", "Accept-Encoding",
		"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return strings.HasPrefix(k, "Proxy-") || strings.HasPrefix(k, "Webhook-")
}

// validHeader returns an error if a name in h is not an HTTP token or a value
// holds a control character (CR and LF included).
func validHeader(h http.Header) error {
	for k, vs := range h {
		if !isToken(k) {
			return fmt.Errorf("invalid header name %q", clip(k))
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
					return fmt.Errorf("header %s: invalid character %q in value", k, c)
				}
			}
		}
	}
	return nil
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110, 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
