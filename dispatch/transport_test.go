package dispatch

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shortTimeout is the deadline of attempts meant to time out.
const shortTimeout = 200 * time.Millisecond

// signalTimeout bounds waits for signals that should come at once.
const signalTimeout = 10 * time.Second

// waitFor fails the test unless ch is closed within signalTimeout.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(signalTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestDispatcher_Do_Timeout(t *testing.T) {
	t.Parallel()

	t.Run("HangingServer", func(t *testing.T) {
		t.Parallel()
		done := release(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-done:
			}
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL, Timeout: shortTimeout})
		wantOutcome(t, out, Retry, KindTimeout)
		wantMessage(t, out, "timed out after 200ms")
		if out.StatusCode != 0 || out.Err.StatusCode != 0 {
			t.Errorf("StatusCode = %d; want 0, no reply came", out.StatusCode)
		}
	})

	t.Run("OptionsTimeout", func(t *testing.T) {
		t.Parallel()
		done := release(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-done:
			}
		})
		d, _ := newTestDispatcher(t, Options{Timeout: shortTimeout})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Retry, KindTimeout)
	})

	t.Run("StalledBody", func(t *testing.T) {
		t.Parallel()
		done := release(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"status":`))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-done:
			}
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL, Timeout: shortTimeout})
		wantOutcome(t, out, Retry, KindTimeout)
		wantMessage(t, out, "reading the body")
		if out.StatusCode != http.StatusOK || string(out.Body) != `{"status":` {
			t.Errorf("StatusCode %d, Body %q; want 200 and the partial body",
				out.StatusCode, out.Body)
		}
	})

	// A server sending a byte now and then never idles long, yet the
	// attempt's one deadline still ends it.
	t.Run("DripFeedingBody", func(t *testing.T) {
		t.Parallel()
		done := release(t)
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-done:
					return
				case <-tick.C:
					if _, err := w.Write([]byte(" ")); err != nil {
						return
					}
					w.(http.Flusher).Flush()
				}
			}
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL, Timeout: shortTimeout})
		wantOutcome(t, out, Retry, KindTimeout)
		if out.Latency > signalTimeout {
			t.Errorf("Latency = %v; the deadline did not hold", out.Latency)
		}
	})
}

func TestDispatcher_Do_Cancel(t *testing.T) {
	t.Parallel()

	// stuck returns a handler that signals its arrival (after sending the
	// headers, if headers is set), then blocks until the request is gone,
	// which it signals too.
	stuck := func(t *testing.T, headers bool) (http.HandlerFunc, chan struct{}, chan struct{}) {
		arrived, gone := make(chan struct{}), make(chan struct{})
		done := release(t)
		return func(w http.ResponseWriter, r *http.Request) {
			if headers {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
			}
			close(arrived)
			select {
			case <-r.Context().Done():
				close(gone)
			case <-done:
			}
		}, arrived, gone
	}

	for _, headers := range []bool{false, true} {
		name := "WaitingForHeaders"
		if headers {
			name = "ReadingBody"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			handler, arrived, gone := stuck(t, headers)
			srv := newRecorder(t, handler)
			d, _ := newTestDispatcher(t, Options{})
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				<-arrived
				cancel()
			}()

			start := time.Now()
			out := d.Do(ctx, &Request{URL: srv.URL, Timeout: time.Hour})
			if elapsed := time.Since(start); elapsed > signalTimeout {
				t.Errorf("Do took %v after cancel", elapsed)
			}
			wantOutcome(t, out, Retry, KindTransport)
			wantMessage(t, out, "cancelled")
			if ctx.Err() == nil {
				t.Errorf("ctx.Err() = nil")
			}
			waitFor(t, gone, "the server to see the request cancelled")
		})
	}

	t.Run("AlreadyCancelled", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		out := d.Do(ctx, &Request{URL: srv.URL})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "cancelled")
	})
}

func TestDispatcher_Do_Body(t *testing.T) {
	t.Parallel()

	// writeN writes n bytes of b to w, stopping at the first error.
	writeN := func(w http.ResponseWriter, n int, b byte) {
		chunk := bytes.Repeat([]byte{b}, 64<<10)
		for n > 0 {
			k, err := w.Write(chunk[:min(n, len(chunk))])
			if err != nil {
				return
			}
			n -= k
		}
	}

	t.Run("TooLarge", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			writeN(w, 20<<20, 'a')
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL, Protocol: Plain})
		wantOutcome(t, out, Failed, KindTooLarge)
		if out.StatusCode != 200 || out.Err.StatusCode != 200 || len(out.Body) != evidenceBytes {
			t.Errorf("StatusCode %d, Body %d bytes; want 200 and %d bytes",
				out.StatusCode, len(out.Body), evidenceBytes)
		}
	})

	for _, tt := range []struct {
		name    string
		size    int
		verdict Verdict
	}{
		{"AtLimit", 64, Succeeded},
		{"OneOverLimit", 65, Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				writeN(w, tt.size, 'a')
			})
			d, _ := newTestDispatcher(t, Options{MaxBodyBytes: 64})
			out := d.Do(t.Context(), &Request{URL: srv.URL, Protocol: Plain})
			if out.Verdict != tt.verdict {
				t.Errorf("Verdict = %v (%v); want %v", out.Verdict, out.Err, tt.verdict)
			}
		})
	}

	t.Run("LargeErrorBodyOnlyEvidence", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			writeN(w, 20<<20, 'e')
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Retry, KindHTTP)
		if len(out.Body) != evidenceBytes {
			t.Errorf("Body is %d bytes; want %d", len(out.Body), evidenceBytes)
		}
	})

	t.Run("GzipDecoded", func(t *testing.T) {
		t.Parallel()
		const reply = `{"status":"success","retval":"zipped"}`
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write([]byte(reply))
			zw.Close()
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Succeeded, "")
		if string(out.Result) != `"zipped"` || string(out.Body) != reply {
			t.Errorf("Result %s, Body %q; want the decoded reply", out.Result, out.Body)
		}
	})

	t.Run("CorruptGzip", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte(`{"status":"success","retval":1}`))
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Failed, KindInvalidResponse)
		wantMessage(t, out, "gzip")
	})

	t.Run("HEADWithGzipHeader", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{Method: "HEAD", URL: srv.URL, Protocol: Plain})
		wantOutcome(t, out, Succeeded, "")
	})
}

// TestDispatcher_Do_GzipBomb sends 256 MiB of zeros in about 256 KiB of
// gzip and checks the attempt allocates a small fraction of that. It does
// not run in parallel, so the allocation count is its own.
func TestDispatcher_Do_GzipBomb(t *testing.T) {
	// Gzip files may hold many members; readers decode them in a row. One
	// member of 1 MiB of zeros, repeated, makes the bomb cheaply.
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	bomb := bytes.Repeat(member.Bytes(), 256)

	for _, status := range []int{http.StatusOK, http.StatusInternalServerError} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				w.WriteHeader(status)
				w.Write(bomb)
			})
			d, _ := newTestDispatcher(t, Options{})

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			out := d.Do(t.Context(), &Request{URL: srv.URL, Protocol: Plain})
			runtime.ReadMemStats(&after)

			if status == http.StatusOK {
				wantOutcome(t, out, Failed, KindTooLarge)
			} else {
				wantOutcome(t, out, Retry, KindHTTP)
			}
			if !bytes.Equal(out.Body, make([]byte, evidenceBytes)) {
				t.Errorf("Body = %d bytes; want %d decoded zeros", len(out.Body), evidenceBytes)
			}
			const budget = 16 << 20
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > budget {
				t.Errorf("attempt allocated %d MiB; want under %d MiB",
					alloc>>20, budget>>20)
			}
		})
	}
}

func TestDispatcher_Do_Redirect(t *testing.T) {
	t.Parallel()

	// redirector answers /hop/N with a redirect (code in ?code=, default
	// 302) to /hop/N-1, and /hop/0 with success.
	redirector := func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if err != nil || n == 0 {
			success(w, r)
			return
		}
		code := http.StatusFound
		if c := r.URL.Query().Get("code"); c != "" {
			code, _ = strconv.Atoi(c)
		}
		next := "/hop/" + strconv.Itoa(n-1) + "?" + r.URL.RawQuery
		http.Redirect(w, r, next, code)
	}

	follows := []struct {
		name   string
		method string
		code   int
		hops   int
	}{
		{"GET302", "GET", 302, 1},
		{"GET301", "GET", 301, 1},
		{"GET303", "GET", 303, 1},
		{"GET307", "GET", 307, 1},
		{"GET308", "GET", 308, 1},
		{"HEAD302", "HEAD", 302, 1},
		{"GETTenHops", "GET", 302, 10},
		{"POST307", "POST", 307, 1},
		{"POST308", "POST", 308, 1},
		{"PUT307", "PUT", 307, 2},
	}
	for _, tt := range follows {
		t.Run("Follows"+tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, redirector)
			d, _ := newTestDispatcher(t, Options{SigningSecrets: []string{testSecret}})
			r := &Request{ID: "r", Method: tt.method, Protocol: Plain,
				URL:  srv.URL + "/hop/" + strconv.Itoa(tt.hops) + "?code=" + strconv.Itoa(tt.code),
				Args: url.Values{"b": {"2"}, "a": {"1"}}}
			out := d.Do(t.Context(), r)
			wantOutcome(t, out, Succeeded, "")
			if out.StatusCode != http.StatusOK {
				t.Errorf("StatusCode = %d; want 200", out.StatusCode)
			}
			reqs := srv.requests()
			if len(reqs) != tt.hops+1 {
				t.Fatalf("server got %d requests; want %d", len(reqs), tt.hops+1)
			}
			// 307 and 308 keep the method and the body, still signed.
			last := reqs[len(reqs)-1]
			if last.Method != tt.method {
				t.Errorf("last hop method = %s; want %s", last.Method, tt.method)
			}
			if tt.method == "POST" || tt.method == "PUT" {
				if last.Body != "a=1&b=2" || last.Length != 7 ||
					last.Header.Get("Content-Type") != contentTypeForm {
					t.Errorf("last hop body %q (%d bytes, %s); want the form body",
						last.Body, last.Length, last.Header.Get("Content-Type"))
				}
				key, _ := ParseSecret(testSecret)
				verifySignature(t, last, last.Body, key)
			}
			if ref := last.Header.Get("Referer"); ref != "" {
				t.Errorf("Referer = %q; want none", ref)
			}
		})
	}

	refused := []struct {
		name   string
		method string
		code   int
		hops   int
		msg    string
	}{
		{"POST302", "POST", 302, 1, "would change POST to GET"},
		{"POST301", "POST", 301, 1, "would change POST to GET"},
		{"POST303", "POST", 303, 1, "would change POST to GET"},
		{"PUT302", "PUT", 302, 1, "would change PUT to GET"},
		{"DELETE303", "DELETE", 303, 1, "would change DELETE to GET"},
		{"GETElevenHops", "GET", 302, 11, "too many redirects"},
	}
	for _, tt := range refused {
		t.Run("Refuses"+tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, redirector)
			d, _ := newTestDispatcher(t, Options{})
			r := &Request{Method: tt.method,
				URL: srv.URL + "/hop/" + strconv.Itoa(tt.hops) + "?code=" + strconv.Itoa(tt.code)}
			out := d.Do(t.Context(), r)
			wantOutcome(t, out, Failed, KindTransport)
			wantMessage(t, out, tt.msg)
			if out.StatusCode != tt.code || out.Err.StatusCode != tt.code {
				t.Errorf("StatusCode = %d; want the redirect's %d", out.StatusCode, tt.code)
			}
		})
	}

	t.Run("Loop", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/loop", http.StatusFound)
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL + "/loop"})
		wantOutcome(t, out, Failed, KindTransport)
		wantMessage(t, out, "too many redirects")
		if n := len(srv.requests()); n != DefaultMaxRedirects+1 {
			t.Errorf("server got %d requests; want %d", n, DefaultMaxRedirects+1)
		}
	})

	t.Run("NotFollowedWhenDisabled", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, redirector)
		d, _ := newTestDispatcher(t, Options{MaxRedirects: -1})
		out := d.Do(t.Context(), &Request{URL: srv.URL + "/hop/1"})
		wantOutcome(t, out, Failed, KindHTTP)
		if out.StatusCode != http.StatusFound {
			t.Errorf("StatusCode = %d; want 302", out.StatusCode)
		}
	})

	t.Run("UnsupportedScheme", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "ftp://127.0.0.1/file", http.StatusFound)
		})
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Failed, KindTransport)
		wantMessage(t, out, "unsupported scheme")
	})

	t.Run("HTTPSToHTTPRefused", func(t *testing.T) {
		t.Parallel()
		plain := newRecorder(t, success)
		secure := newTLSRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plain.URL+"/down", http.StatusFound)
		})
		d, _ := newTestDispatcher(t, Options{TLSConfig: tlsConfig(secure)})
		out := d.Do(t.Context(), &Request{URL: secure.URL})
		wantOutcome(t, out, Failed, KindTransport)
		wantMessage(t, out, "https to http")
		if n := len(plain.requests()); n != 0 {
			t.Errorf("http server got %d requests; want 0", n)
		}
	})
}

func TestDispatcher_Do_TLS(t *testing.T) {
	t.Parallel()

	t.Run("CustomCA", func(t *testing.T) {
		t.Parallel()
		srv := newTLSRecorder(t, success)
		cfg := tlsConfig(srv)
		protos := len(cfg.NextProtos)
		d, _ := newTestDispatcher(t, Options{TLSConfig: cfg})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Succeeded, "")
		if len(cfg.NextProtos) != protos {
			t.Errorf("Options.TLSConfig was modified")
		}
	})

	t.Run("UnknownCARetried", func(t *testing.T) {
		t.Parallel()
		srv := newTLSRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{URL: srv.URL})
		wantOutcome(t, out, Retry, KindTransport)
		wantMessage(t, out, "certificate")
	})
}

func TestDispatcher_Close(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, success)
	d, _ := newTestDispatcher(t, Options{})
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
	d.Close()
	d.Close()
	wantOutcome(t, d.Do(t.Context(), &Request{URL: srv.URL}), Succeeded, "")
}
