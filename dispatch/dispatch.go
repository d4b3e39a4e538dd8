package dispatch

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// Defaults of the Options fields left at zero.
const (
	// DefaultTimeout is the deadline of an attempt.
	DefaultTimeout = 15 * time.Second

	// DefaultMaxBodyBytes is the largest 2xx body read, after decompression.
	DefaultMaxBodyBytes = 1 << 20

	// DefaultMaxRedirects is how many redirects a GET or HEAD follows.
	DefaultMaxRedirects = 10

	// DefaultMaxRetryAfter caps the delay a Retry-After header may ask for.
	DefaultMaxRetryAfter = time.Hour

	// DefaultUserAgent is sent when Options.UserAgent is empty.
	DefaultUserAgent = "hookq/dev"
)

// Transport tuning. Webhook traffic is many small requests to a few hosts
// at a time, so connections are kept alive and pooled generously.
const (
	// connectTimeout bounds DNS, connect and the TLS handshake. It matters
	// when the attempt is gone: the transport finishes dials in the
	// background so that the connection can serve the next attempt.
	connectTimeout = 30 * time.Second

	defaultIdleConnsPerHost = 64
	maxIdleConns            = 1024
	idleConnTimeout         = 90 * time.Second
	tcpKeepAlive            = 30 * time.Second

	// maxHeaderBytes bounds a reply's headers, which an endpoint could
	// otherwise make as large as the transport's default of 10 MiB.
	maxHeaderBytes = 256 << 10
)

// Options configure a Dispatcher. The zero value means the defaults.
type Options struct {
	// Timeout is the deadline of an attempt whose Request has none: one
	// total deadline for DNS, connect, TLS, the request, the reply's
	// headers and its body. Zero or negative means 15s.
	Timeout time.Duration

	// MaxBodyBytes is the most a 2xx reply body may hold, counted after
	// decompression; a longer body fails the attempt with KindTooLarge.
	// Zero or negative means 1 MiB.
	MaxBodyBytes int64

	// MaxRedirects is how many redirects a GET or HEAD follows; one more
	// fails the attempt. Zero means 10; negative means none are followed,
	// so a 3xx reply fails the attempt with KindHTTP.
	MaxRedirects int

	// MaxRetryAfter caps Outcome.RetryAfter. Zero or negative means 1h.
	MaxRetryAfter time.Duration

	// UserAgent is sent as User-Agent on every request. Empty means
	// "hookq/dev"; the CLI sets "hookq/<version>".
	UserAgent string

	// SigningSecrets are Standard Webhooks secrets ("whsec_<base64>"). Each
	// signs every request, side by side in webhook-signature, so a secret
	// can be rotated without a gap. None means requests are not signed.
	SigningSecrets []string

	// Guard decides which addresses may be dialled. The zero Guard refuses
	// only link-local and cloud metadata addresses.
	Guard Guard

	// LookupNetIP resolves host names; it is a hook for tests. Nil means
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host).
	LookupNetIP func(ctx context.Context, host string) ([]netip.Addr, error)

	// MaxConnsPerHost caps the connections to one host, dialling, in use
	// and idle together; an attempt over the cap waits for a free one
	// within its deadline. Zero means no cap. The idle pool keeps up to
	// MaxConnsPerHost idle connections per host, 64 when there is no cap,
	// and 1024 across hosts.
	MaxConnsPerHost int

	// TLSConfig configures TLS, for example with a custom root CA. It is
	// cloned, never modified. Nil means the system defaults.
	TLSConfig *tls.Config

	// Transport, if set, carries every request instead of the network:
	// a hook for tests, such as package hookqtest's handler in process.
	// The dispatcher then dials nothing, so the Guard is not applied, and
	// LookupNetIP, MaxConnsPerHost and TLSConfig are unused. Everything
	// else is as with the network: the request is built, signed and sent
	// under the attempt's deadline, redirects follow the same policy, and
	// the reply is read under the same limits and classified the same
	// way. Nil means the network.
	Transport http.RoundTripper
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.LookupNetIP == nil {
		o.LookupNetIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return o
}

// Dispatcher makes attempts. It holds one HTTP client whose connections are
// pooled across attempts. A Dispatcher is safe for concurrent use; its
// options are fixed by New.
type Dispatcher struct {
	opts   Options // defaults applied
	guard  Guard
	keys   [][]byte
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	client *http.Client

	// now is the clock for timestamps and Retry-After dates.
	now func() time.Time

	// dialAddr dials one already checked IP address and port. Tests wrap it
	// to see every dial.
	dialAddr func(ctx context.Context, network, address string) (net.Conn, error)
}

// New returns a Dispatcher configured by opts. It fails only if a signing
// secret is malformed.
func New(opts Options) (*Dispatcher, error) {
	opts = opts.withDefaults()
	keys := make([][]byte, 0, len(opts.SigningSecrets))
	for i, s := range opts.SigningSecrets {
		key, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("new dispatcher: signing secret %d: %w", i+1, err)
		}
		keys = append(keys, key)
	}

	d := &Dispatcher{
		opts:   opts,
		guard:  opts.Guard,
		keys:   keys,
		lookup: opts.LookupNetIP,
		now:    time.Now,
	}
	d.guard.Allow = slices.Clone(opts.Guard.Allow)
	d.opts.Guard = d.guard

	// The guard checks the socket address once more just before connect.
	dialer := &net.Dialer{
		Timeout:   connectTimeout,
		KeepAlive: tcpKeepAlive,
		Control:   d.guard.control,
	}
	d.dialAddr = dialer.DialContext

	idlePerHost := opts.MaxConnsPerHost
	if idlePerHost <= 0 {
		idlePerHost = defaultIdleConnsPerHost
	}
	var tlsConfig *tls.Config
	if opts.TLSConfig != nil {
		tlsConfig = opts.TLSConfig.Clone()
	}
	std := &http.Transport{
		// No proxy: a proxy would dial on our behalf, past the guard.
		Proxy:                  nil,
		DialContext:            d.dial,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    connectTimeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    idlePerHost,
		MaxConnsPerHost:        max(opts.MaxConnsPerHost, 0),
		IdleConnTimeout:        idleConnTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
		// We ask for gzip and decode it ourselves, under the body limit,
		// whoever chose the encoding.
		DisableCompression: true,
	}
	var transport http.RoundTripper = &splitTransport{
		h1:  newH1Transport(d.dial, max(opts.MaxConnsPerHost, 0), idlePerHost),
		std: std,
	}
	if opts.Transport != nil {
		transport = opts.Transport
	}
	d.client = &http.Client{
		Transport:     transport,
		CheckRedirect: d.checkRedirect,
	}
	return d, nil
}

// Close closes the idle connections. Attempts in flight are not affected,
// and the Dispatcher stays usable.
func (d *Dispatcher) Close() {
	d.client.CloseIdleConnections()
}

// Do makes one attempt of r and says how it went. It returns when the
// attempt is over, with the request cancelled and the reply body closed.
//
// The attempt has one deadline, r.Timeout (or Options.Timeout), covering
// everything from DNS to the last byte of the body. If ctx is done first,
// the outcome is Retry with KindTransport and a message saying the attempt
// was cancelled; the caller tells this case apart by ctx.Err().
func (d *Dispatcher) Do(ctx context.Context, r *Request) Outcome {
	start := time.Now()
	out := d.do(ctx, r)
	out.Latency = time.Since(start)
	return out
}

// do is Do without the stopwatch.
func (d *Dispatcher) do(ctx context.Context, r *Request) Outcome {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = d.opts.Timeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a := attempt{parent: ctx, ctx: actx, timeout: timeout}

	// A request that cannot be built is never sent.
	req, err := d.newRequest(actx, r)
	if err != nil {
		return Outcome{Verdict: Failed, Err: &Error{Kind: KindTransport, Message: err.Error()}}
	}

	// Send it and wait for the headers of the final reply.
	resp, err := d.client.Do(req)
	if err != nil {
		// A refused redirect comes with the reply that asked for it,
		// its body already closed.
		out := a.failure(err, "")
		if resp != nil {
			out.StatusCode = resp.StatusCode
			out.Err.StatusCode = resp.StatusCode
		}
		return out
	}
	defer resp.Body.Close()

	return d.readReply(a, r.Protocol, resp)
}
