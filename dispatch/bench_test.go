package dispatch

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
)

// BenchmarkDispatcher_Do measures one whole attempt of the queue's typical
// task, GET /multiply?x=10&y=10, against a loopback receiver.
func BenchmarkDispatcher_Do(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, _ := strconv.Atoi(r.FormValue("x"))
		y, _ := strconv.Atoi(r.FormValue("y"))
		fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
	}))
	b.Cleanup(srv.Close)

	r := &Request{
		ID:   "01JF0000000000000000000000",
		URL:  srv.URL + "/multiply",
		Args: url.Values{"x": {"10"}, "y": {"10"}},
	}
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
