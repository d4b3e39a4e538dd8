package dispatch

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// testSecret is the secret of the Standard Webhooks test vector.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// dialLog records the addresses a Dispatcher dialled.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (l *dialLog) add(a string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrs = append(l.addrs, a)
}

// all returns the addresses dialled so far.
func (l *dialLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.addrs...)
}

// newTestDispatcher returns a Dispatcher built from opts whose dials are
// logged, and refused, with a test error, unless they go to loopback: no
// test may send a packet anywhere else.
func newTestDispatcher(t testing.TB, opts Options) (*Dispatcher, *dialLog) {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(d.Close)

	log := &dialLog{}
	dial := d.dialAddr
	d.dialAddr = func(ctx context.Context, network, address string) (net.Conn, error) {
		log.add(address)
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			t.Errorf("dial of non-loopback address %s", address)
			return nil, errors.New("test: non-loopback dial blocked")
		}
		return dial(ctx, network, address)
	}
	return d, log
}

// fakeResolver answers LookupNetIP from a table and counts the questions.
type fakeResolver struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
	asked []string
}

// newResolver returns a fakeResolver mapping each host to its addresses,
// written as strings.
func newResolver(hosts map[string][]string) *fakeResolver {
	r := &fakeResolver{hosts: map[string][]netip.Addr{}}
	for host, addrs := range hosts {
		for _, a := range addrs {
			r.hosts[host] = append(r.hosts[host], netip.MustParseAddr(a))
		}
	}
	return r
}

// LookupNetIP is the Options.LookupNetIP hook.
func (r *fakeResolver) LookupNetIP(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, host)
	addrs, ok := r.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// questions returns the hosts asked about so far.
func (r *fakeResolver) questions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.asked...)
}

// seen is a request as a test server received it.
type seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
	Length     int64
	TE         []string
}

// recorder is a test server that records the requests it receives and
// answers each with reply.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

// newRecorder starts a loopback server, closed at cleanup, that records each
// request and then calls reply.
func newRecorder(t *testing.T, reply http.HandlerFunc) *recorder {
	t.Helper()
	return startRecorder(t, reply, httptest.NewServer)
}

// newTLSRecorder is newRecorder over https, with a certificate for
// 127.0.0.1 that only tlsConfig(rec) trusts.
func newTLSRecorder(t *testing.T, reply http.HandlerFunc) *recorder {
	t.Helper()
	return startRecorder(t, reply, httptest.NewTLSServer)
}

// tlsConfig returns a TLS configuration that trusts rec's certificate.
func tlsConfig(rec *recorder) *tls.Config {
	return rec.Client().Transport.(*http.Transport).TLSClientConfig
}

// startRecorder starts a recorder with the given httptest constructor.
func startRecorder(t *testing.T, reply http.HandlerFunc,
	start func(http.Handler) *httptest.Server) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{
			Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header.Clone(), Body: string(body), Length: r.ContentLength,
			TE: r.TransferEncoding,
		})
		rec.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// requests returns what the server received so far.
func (rec *recorder) requests() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.reqs...)
}

// only returns the one request the server received, failing the test if
// there were more or none.
func (rec *recorder) only(t *testing.T) seen {
	t.Helper()
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("server got %d requests; want 1", len(reqs))
	}
	return reqs[0]
}

// replyWith answers every request with status and body.
func replyWith(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// success is the Celery reply of a task that returned 100.
var success = replyWith(http.StatusOK, `{"status":"success","retval":100}`)

// release returns a channel closed at cleanup, before servers started
// earlier are closed, for handlers that block until the test ends.
func release(t *testing.T) <-chan struct{} {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return done
}

// wantOutcome fails the test unless out has the verdict and error kind
// given; kind "" means no error.
func wantOutcome(t *testing.T, out Outcome, verdict Verdict, kind string) {
	t.Helper()
	if out.Verdict != verdict {
		t.Errorf("Verdict = %v; want %v (err %v)", out.Verdict, verdict, out.Err)
	}
	switch {
	case kind == "" && out.Err != nil:
		t.Errorf("Err = %v; want none", out.Err)
	case kind != "" && out.Err == nil:
		t.Errorf("Err = nil; want kind %q", kind)
	case kind != "" && out.Err.Kind != kind:
		t.Errorf("Err = %v; want kind %q", out.Err, kind)
	}
}

// wantMessage fails the test unless out's error message contains sub.
func wantMessage(t *testing.T, out Outcome, sub string) {
	t.Helper()
	if out.Err == nil || !strings.Contains(out.Err.Message, sub) {
		t.Errorf("Err = %v; want a message containing %q", out.Err, sub)
	}
}

// fixedTime is the attempt time of tests that check timestamps.
var fixedTime = time.Unix(1614265330, 0)
