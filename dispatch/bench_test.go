package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"testing"

	"github.com/hookq/hookq/internal/cputime"
)

// BenchmarkDispatcher_Do measures one whole attempt of the queue's typical
// task, GET /multiply?x=10&y=10, against a loopback receiver.
func BenchmarkDispatcher_Do(b *testing.B) {
	r := multiplyRequest(b)
	// Unsigned is what the queue does by default; Signed adds the HMAC.
	for name, opts := range map[string]Options{
		"Unsigned": {},
		"Signed":   {SigningSecrets: []string{testSecret}},
	} {
		b.Run(name, func(b *testing.B) {
			d, _ := newTestDispatcher(b, opts)
			b.ReportAllocs()
			for b.Loop() {
				if out := d.Do(b.Context(), r); out.Verdict != Succeeded {
					b.Fatalf("Do = %v, %v", out.Verdict, out.Err)
				}
			}
		})
	}
}

// BenchmarkDispatcher_DoParallel measures attempts from many goroutines at
// once, as the queue's workers make them, with the CPU time of the process
// (dispatcher and receiver both) per attempt: through the dispatcher's own
// transport, and through net/http's Transport for comparison.
func BenchmarkDispatcher_DoParallel(b *testing.B) {
	r := multiplyRequest(b)
	const conns = 64
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"Pooled", Options{MaxConnsPerHost: conns}},
		{"NetHTTP", Options{Transport: &http.Transport{
			MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d, _ := newTestDispatcher(b, tc.opts)
			b.ReportAllocs()
			b.SetParallelism(conns / runtime.GOMAXPROCS(0))
			cpu := cputime.Start()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out := d.Do(context.Background(), r); out.Verdict != Succeeded {
						b.Errorf("Do = %v, %v", out.Verdict, out.Err)
						return
					}
				}
			})
			b.StopTimer()
			cpu.Report(b)
		})
	}
}

// multiplyRequest starts a loopback receiver of the multiply task, closed
// when b ends, and returns the queue's typical attempt of it.
func multiplyRequest(b *testing.B) *Request {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, _ := strconv.Atoi(r.FormValue("x"))
		y, _ := strconv.Atoi(r.FormValue("y"))
		fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
	}))
	b.Cleanup(srv.Close)
	return &Request{
		ID:   "01JF0000000000000000000000",
		URL:  srv.URL + "/multiply",
		Args: url.Values{"x": {"10"}, "y": {"10"}},
	}
}
