package dispatch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// reply returns a response to req with the given status and body.
func reply(req *http.Request, status int, header http.Header, body string) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{
		StatusCode:    status,
		Status:        http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

func TestDispatcher_Do_Transport(t *testing.T) {
	t.Parallel()
	// Names resolve to nothing and private addresses are refused: only a
	// request that goes through Transport can succeed.
	noDNS := func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("test: no DNS")
	}
	base := Options{Guard: Guard{DenyPrivate: true}, LookupNetIP: noDNS}

	t.Run("CarriesTheBuiltRequest", func(t *testing.T) {
		var mu sync.Mutex
		var seen []*http.Request
		opts := base
		opts.SigningSecrets = []string{testSecret}
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
			return reply(r, http.StatusOK, nil, `{"status":"success","retval":100}`), nil
		})
		d, dials := newTestDispatcher(t, opts)
		out := d.Do(context.Background(), &Request{ID: "task-1", URL: "http://hooks.example/multiply",
			Args: url.Values{"x": {"10"}, "y": {"10"}}})
		if out.Verdict != Succeeded || string(out.Result) != "100" {
			t.Fatalf("outcome = %+v; want succeeded 100", out)
		}
		if len(seen) != 1 {
			t.Fatalf("transport saw %d requests; want 1", len(seen))
		}
		r := seen[0]
		if r.URL.String() != "http://hooks.example/multiply?x=10&y=10" {
			t.Errorf("URL = %s", r.URL)
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "User-Agent"} {
			if r.Header.Get(h) == "" {
				t.Errorf("request lacks %s", h)
			}
		}
		if got := dials.all(); len(got) != 0 {
			t.Errorf("dialled %v; want nothing", got)
		}
	})

	t.Run("BodyLimit", func(t *testing.T) {
		opts := base
		opts.MaxBodyBytes = 64
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return reply(r, http.StatusOK, nil, `{"status":"success","retval":"`+strings.Repeat("x", 100)+`"}`), nil
		})
		d, _ := newTestDispatcher(t, opts)
		out := d.Do(context.Background(), &Request{URL: "http://hooks.example/"})
		if out.Verdict != Failed || out.Err == nil || out.Err.Kind != KindTooLarge {
			t.Errorf("outcome = %+v; want failed too_large", out)
		}
	})

	t.Run("Deadline", func(t *testing.T) {
		opts := base
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		d, _ := newTestDispatcher(t, opts)
		out := d.Do(context.Background(), &Request{URL: "http://hooks.example/", Timeout: shortTimeout})
		if out.Verdict != Retry || out.Err == nil || out.Err.Kind != KindTimeout {
			t.Errorf("outcome = %+v; want retry timeout", out)
		}
	})

	t.Run("RedirectPolicy", func(t *testing.T) {
		opts := base
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return reply(r, http.StatusFound, http.Header{"Location": {"/elsewhere"}}, ""), nil
		})
		d, _ := newTestDispatcher(t, opts)
		out := d.Do(context.Background(), &Request{Method: "POST", URL: "http://hooks.example/"})
		if out.Verdict != Failed || out.Err == nil || !strings.Contains(out.Err.Message, "would change POST to GET") {
			t.Errorf("outcome = %+v; want a refused redirect", out)
		}
	})

	t.Run("RetryStatus", func(t *testing.T) {
		opts := base
		opts.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return reply(r, http.StatusServiceUnavailable, http.Header{"Retry-After": {"7"}}, "busy"), nil
		})
		d, _ := newTestDispatcher(t, opts)
		out := d.Do(context.Background(), &Request{URL: "http://hooks.example/"})
		if out.Verdict != Retry || out.StatusCode != 503 || out.RetryAfter.Seconds() != 7 {
			t.Errorf("outcome = %+v; want retry 503 after 7s", out)
		}
	})
}
