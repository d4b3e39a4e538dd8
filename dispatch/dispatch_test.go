package dispatch

import (
	"cmp"
	"crypto/hmac"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDispatcher_Do_Protocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		proto   Protocol
		ctype   string
		status  int
		body    string
		verdict Verdict
		result  string
		kind    string
		message string
	}{
		{name: "SuccessRetval100", body: `{"status":"success","retval":100}`,
			verdict: Succeeded, result: `100`},
		{name: "SuccessNullRetval", body: `{"status":"success","retval":null}`,
			verdict: Succeeded, result: `null`},
		{name: "Success201", status: http.StatusCreated, body: `{"status":"success","retval":1}`,
			verdict: Succeeded, result: `1`},
		{name: "ContentTypeIgnored", ctype: "text/html", body: `{"status":"success","retval":"x"}`,
			verdict: Succeeded, result: `"x"`},
		{name: "FailureReason", body: `{"status":"failure","reason":"card declined"}`,
			verdict: Failed, kind: KindRemote, message: "card declined"},
		{name: "EmptyBody", body: ``,
			verdict: Failed, kind: KindInvalidResponse, message: "empty body"},
		{name: "NoContent", status: http.StatusNoContent,
			verdict: Failed, kind: KindInvalidResponse, message: "empty body"},
		{name: "InvalidJSON", body: `{"status":`,
			verdict: Failed, kind: KindInvalidResponse, message: "not valid JSON"},
		{name: "NotObject", body: `[1]`,
			verdict: Failed, kind: KindInvalidResponse, message: "not a JSON object"},
		{name: "MissingStatus", body: `{"retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: `no "status"`},
		{name: "UnknownStatus", body: `{"status":"Success","retval":1}`,
			verdict: Failed, kind: KindInvalidResponse, message: "unknown status"},
		{name: "SuccessWithoutRetval", body: `{"status":"success"}`,
			verdict: Failed, kind: KindInvalidResponse, message: `without "retval"`},
		{name: "PlainJSON", proto: Plain, body: `{"n": 1}`,
			verdict: Succeeded, result: `{"n":1}`},
		{name: "PlainText", proto: Plain, ctype: "text/plain", body: `done`,
			verdict: Succeeded, result: `"done"`},
		{name: "PlainEmpty", proto: Plain, status: http.StatusAccepted,
			verdict: Succeeded, result: `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				w.WriteHeader(cmp.Or(tt.status, http.StatusOK))
				w.Write([]byte(tt.body))
			})
			d, _ := newTestDispatcher(t, Options{})
			out := d.Do(t.Context(), &Request{ID: "t", URL: srv.URL, Protocol: tt.proto})
			wantOutcome(t, out, tt.verdict, tt.kind)
			if tt.verdict == Succeeded && string(out.Result) != tt.result {
				t.Errorf("Result = %s; want %s", out.Result, tt.result)
			}
			if tt.message != "" {
				wantMessage(t, out, tt.message)
			}
			if want := cmp.Or(tt.status, http.StatusOK); out.StatusCode != want {
				t.Errorf("StatusCode = %d; want %d", out.StatusCode, want)
			}
			if out.Err != nil && out.Err.StatusCode != out.StatusCode {
				t.Errorf("Err.StatusCode = %d; want %d", out.Err.StatusCode, out.StatusCode)
			}
			if string(out.Body) != tt.body {
				t.Errorf("Body = %q; want %q", out.Body, tt.body)
			}
			if out.Latency <= 0 {
				t.Errorf("Latency = %v; want > 0", out.Latency)
			}
		})
	}
}

func TestDispatcher_Do_Request(t *testing.T) {
	t.Parallel()
	args := url.Values{"y": {"10"}, "x": {"10"}}
	tests := []struct {
		name   string
		method string
		path   string // appended to the server URL
		args   url.Values
		json   string
		target string // RequestURI the server should see
		body   string
		ctype  string
	}{
		{name: "GETArgsInQuery", path: "/multiply", args: args,
			target: "/multiply?x=10&y=10"},
		{name: "GETArgsOverrideURLKeys", method: "GET", path: "/m?x=1&keep=a%20b&x=2", args: args,
			target: "/m?keep=a%20b&x=10&y=10"},
		{name: "GETQueryKeptAsWritten", path: "/m?b=2&a=%41&flag", target: "/m?b=2&a=%41&flag"},
		{name: "GETNoPath", target: "/"},
		{name: "HEADArgsInQuery", method: "HEAD", path: "/h", args: url.Values{"a": {"1"}},
			target: "/h?a=1"},
		{name: "POSTFormSorted", method: "POST", path: "/multiply?v=1", args: args,
			target: "/multiply?v=1", body: "x=10&y=10", ctype: contentTypeForm},
		{name: "POSTRepeatedKeys", method: "POST", path: "/p",
			args:   url.Values{"id": {"3", "1", "2"}, "a": {"x y&z"}},
			target: "/p", body: "a=x+y%26z&id=3&id=1&id=2", ctype: contentTypeForm},
		{name: "POSTNoArgs", method: "POST", path: "/p", target: "/p"},
		{name: "PUTForm", method: "PUT", path: "/p", args: args,
			target: "/p", body: "x=10&y=10", ctype: contentTypeForm},
		{name: "PATCHForm", method: "PATCH", path: "/p", args: args,
			target: "/p", body: "x=10&y=10", ctype: contentTypeForm},
		{name: "DELETEForm", method: "DELETE", path: "/p", args: args,
			target: "/p", body: "x=10&y=10", ctype: contentTypeForm},
		{name: "JSONBodyArgsInQuery", method: "POST", path: "/j", args: args,
			json: `{"a": [1, 2]}`, target: "/j?x=10&y=10", body: `{"a": [1, 2]}`,
			ctype: contentTypeJSON},
		{name: "URLAndMethodAreOrdinaryArgs", path: "/o",
			args: url.Values{"url": {"u"}, "method": {"m"}}, target: "/o?method=m&url=u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, success)
			d, _ := newTestDispatcher(t, Options{})
			r := &Request{ID: "t", Method: tt.method, URL: srv.URL + tt.path, Args: tt.args}
			if tt.json != "" {
				r.JSON = []byte(tt.json)
			}
			if r.Method == http.MethodHead {
				r.Protocol = Plain
			}
			out := d.Do(t.Context(), r)
			wantOutcome(t, out, Succeeded, "")

			got := srv.only(t)
			if want := cmp.Or(tt.method, "GET"); got.Method != want {
				t.Errorf("method = %s; want %s", got.Method, want)
			}
			if got.RequestURI != tt.target {
				t.Errorf("target = %q; want %q", got.RequestURI, tt.target)
			}
			if got.Body != tt.body {
				t.Errorf("body = %q; want %q", got.Body, tt.body)
			}
			if got.Length != int64(len(tt.body)) || len(got.TE) != 0 {
				t.Errorf("Content-Length = %d, Transfer-Encoding %v; want exactly %d",
					got.Length, got.TE, len(tt.body))
			}
			if ct := got.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type = %q; want %q", ct, tt.ctype)
			}
		})
	}
}

func TestDispatcher_Do_Headers(t *testing.T) {
	t.Parallel()

	t.Run("Standard", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{})
		out := d.Do(t.Context(), &Request{ID: "01JF0TASK", URL: srv.URL, Time: fixedTime})
		wantOutcome(t, out, Succeeded, "")
		h := srv.only(t).Header
		for name, want := range map[string]string{
			"User-Agent":        DefaultUserAgent,
			"Webhook-Id":        "01JF0TASK",
			"Webhook-Timestamp": "1614265330",
			"Accept-Encoding":   "gzip",
		} {
			if got := h.Get(name); got != want {
				t.Errorf("%s = %q; want %q", name, got, want)
			}
		}
		if sig := h.Get("Webhook-Signature"); sig != "" {
			t.Errorf("webhook-signature = %q without secrets; want none", sig)
		}
	})

	t.Run("TimestampDefaultsToNow", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{UserAgent: "hookq/1.2.3"})
		d.now = func() time.Time { return time.Unix(1700000000, 0) }
		d.Do(t.Context(), &Request{URL: srv.URL})
		h := srv.only(t).Header
		if got := h.Get("Webhook-Timestamp"); got != "1700000000" {
			t.Errorf("webhook-timestamp = %q; want 1700000000", got)
		}
		if got := h.Get("User-Agent"); got != "hookq/1.2.3" {
			t.Errorf("User-Agent = %q; want hookq/1.2.3", got)
		}
	})

	t.Run("UserCannotOverride", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{SigningSecrets: []string{testSecret}})
		user := http.Header{
			"User-Agent":          {"evil"},
			"webhook-id":          {"evil"},
			"Webhook-Timestamp":   {"1"},
			"Webhook-Signature":   {"v1,evil"},
			"Host":                {"evil.example"},
			"Content-Length":      {"999"},
			"Content-Type":        {"text/evil"},
			"Connection":          {"close"},
			"Keep-Alive":          {"1"},
			"Te":                  {"trailers"},
			"Trailer":             {"X"},
			"Transfer-Encoding":   {"chunked"},
			"Upgrade":             {"h2c"},
			"Proxy-Authorization": {"Basic evil"},
			"Accept-Encoding":     {"br"},
			"Authorization":       {"Bearer ok"},
			"x-custom":            {"a", "b"},
		}
		out := d.Do(t.Context(), &Request{ID: "t1", Method: "POST", URL: srv.URL,
			Args: url.Values{"a": {"1"}}, Header: user})
		wantOutcome(t, out, Succeeded, "")
		got := srv.only(t)
		for name, want := range map[string]string{
			"User-Agent":          DefaultUserAgent,
			"Webhook-Id":          "t1",
			"Content-Type":        contentTypeForm,
			"Connection":          "",
			"Keep-Alive":          "",
			"Te":                  "",
			"Trailer":             "",
			"Upgrade":             "",
			"Proxy-Authorization": "",
			"Accept-Encoding":     "gzip",
			"Authorization":       "Bearer ok",
		} {
			if v := got.Header.Get(name); v != want {
				t.Errorf("%s = %q; want %q", name, v, want)
			}
		}
		if got.Header.Get("Webhook-Timestamp") == "1" {
			t.Errorf("webhook-timestamp was overridden")
		}
		if strings.Contains(got.Header.Get("Webhook-Signature"), "evil") {
			t.Errorf("webhook-signature was overridden")
		}
		if got.Host == "evil.example" || got.Length != 3 || len(got.TE) != 0 {
			t.Errorf("Host %q, Content-Length %d, Transfer-Encoding %v: overridden",
				got.Host, got.Length, got.TE)
		}
		if v := got.Header.Values("X-Custom"); len(v) != 2 {
			t.Errorf("X-Custom = %v; want [a b]", v)
		}
	})

	t.Run("ContentTypeWithoutBodyIsTheUsers", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, success)
		d, _ := newTestDispatcher(t, Options{})
		d.Do(t.Context(), &Request{URL: srv.URL,
			Header: http.Header{"Content-Type": {"application/x-custom"}}})
		if got := srv.only(t).Header.Get("Content-Type"); got != "application/x-custom" {
			t.Errorf("Content-Type = %q; want the user's", got)
		}
	})
}

func TestDispatcher_Do_InvalidRequest(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, success)
	tests := []struct {
		name string
		req  Request
		msg  string
	}{
		{"UnknownProtocol", Request{URL: srv.URL, Protocol: "soap"}, "unknown protocol"},
		{"BadScheme", Request{URL: "ftp://127.0.0.1/"}, "http or https"},
		{"Relative", Request{URL: "/x"}, "http or https"},
		{"Unparsable", Request{URL: "http://[::1"}, "build request"},
		{"BadMethod", Request{URL: srv.URL, Method: "GE T"}, "invalid method"},
		{"HeaderCRLF", Request{URL: srv.URL,
			Header: http.Header{"X-A": {"a\r\nX-Injected: 1"}}}, "invalid character"},
		{"HeaderBadName", Request{URL: srv.URL, Header: http.Header{"X A": {"a"}}},
			"invalid header name"},
	}
	d, dials := newTestDispatcher(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := d.Do(t.Context(), &tt.req)
			wantOutcome(t, out, Failed, KindTransport)
			wantMessage(t, out, tt.msg)
		})
	}
	if n := len(srv.requests()); n != 0 || len(dials.all()) != 0 {
		t.Errorf("server got %d requests, dials %v; want none", n, dials.all())
	}
}

func TestDispatcher_Do_Signature(t *testing.T) {
	t.Parallel()
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	const other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
	key2, err := ParseSecret(other)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		req     Request
		payload func(s seen) string // what the receiver verifies
	}{
		{"GETSignsTarget", Request{Method: "GET", URL: "/multiply",
			Args: url.Values{"x": {"10"}, "y": {"10"}}},
			func(s seen) string { return s.RequestURI }},
		{"POSTFormSignsBody", Request{Method: "POST", URL: "/p",
			Args: url.Values{"b": {"2"}, "a": {"1"}}},
			func(s seen) string { return s.Body }},
		{"JSONSignsBody", Request{Method: "PUT", URL: "/j", JSON: []byte(`{"k": "v"}`)},
			func(s seen) string { return s.Body }},
		{"EmptyPOSTSignsEmptyBody", Request{Method: "POST", URL: "/e?q=1"},
			func(s seen) string { return s.Body }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, success)
			d, _ := newTestDispatcher(t, Options{SigningSecrets: []string{testSecret, other}})
			r := tt.req
			r.ID, r.URL, r.Time = "msg_1", srv.URL+r.URL, fixedTime
			wantOutcome(t, d.Do(t.Context(), &r), Succeeded, "")

			got := srv.only(t)
			verifySignature(t, got, tt.payload(got), key, key2)
		})
	}

	t.Run("RedirectResigned", func(t *testing.T) {
		t.Parallel()
		srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new?moved=1", http.StatusMovedPermanently)
				return
			}
			success(w, r)
		})
		d, _ := newTestDispatcher(t, Options{SigningSecrets: []string{testSecret}})
		out := d.Do(t.Context(), &Request{ID: "msg_2", URL: srv.URL + "/old?x=1", Time: fixedTime})
		wantOutcome(t, out, Succeeded, "")
		reqs := srv.requests()
		if len(reqs) != 2 {
			t.Fatalf("server got %d requests; want 2", len(reqs))
		}
		for _, s := range reqs {
			verifySignature(t, s, s.RequestURI, key)
		}
	})
}

// verifySignature checks, as a receiver would, that s carries a valid
// signature of payload under each key, in order.
func verifySignature(t *testing.T, s seen, payload string, keys ...[]byte) {
	t.Helper()
	id := s.Header.Get("Webhook-Id")
	secs, err := strconv.ParseInt(s.Header.Get("Webhook-Timestamp"), 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp: %v", err)
	}
	sigs := strings.Fields(s.Header.Get("Webhook-Signature"))
	if len(sigs) != len(keys) {
		t.Fatalf("webhook-signature has %d signatures; want %d", len(sigs), len(keys))
	}
	for i, key := range keys {
		want := Sign(key, id, time.Unix(secs, 0), []byte(payload))
		if !hmac.Equal([]byte(sigs[i]), []byte(want)) {
			t.Errorf("signature %d = %s; want %s over %q", i, sigs[i], want, payload)
		}
	}
}

func TestDispatcher_Do_Status(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		verdict    Verdict
		wantAfter  time.Duration
	}{
		{name: "400Failed", status: 400, verdict: Failed},
		{name: "401Failed", status: 401, verdict: Failed},
		{name: "404Failed", status: 404, verdict: Failed},
		{name: "410Failed", status: 410, verdict: Failed},
		{name: "422Failed", status: 422, verdict: Failed},
		{name: "408Retry", status: 408, verdict: Retry},
		{name: "425Retry", status: 425, verdict: Retry},
		{name: "429Retry", status: 429, verdict: Retry},
		{name: "500Retry", status: 500, verdict: Retry},
		{name: "502Retry", status: 502, verdict: Retry},
		{name: "503Retry", status: 503, verdict: Retry},
		{name: "504Retry", status: 504, verdict: Retry},
		{name: "304Failed", status: 304, verdict: Failed},
		{name: "300Failed", status: 300, verdict: Failed},
		{name: "429RetryAfterSeconds", status: 429, retryAfter: "120",
			verdict: Retry, wantAfter: 2 * time.Minute},
		{name: "503RetryAfterDate", status: 503,
			retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat),
			verdict:    Retry, wantAfter: 90 * time.Second},
		{name: "503RetryAfterCapped", status: 503, retryAfter: "86400",
			verdict: Retry, wantAfter: 10 * time.Minute},
		{name: "500RetryAfterIgnored", status: 500, retryAfter: "120", verdict: Retry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := strings.Repeat("e", 3000)
			srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(body))
			})
			d, _ := newTestDispatcher(t, Options{MaxRetryAfter: 10 * time.Minute})
			d.now = func() time.Time { return now }
			out := d.Do(t.Context(), &Request{URL: srv.URL})
			wantOutcome(t, out, tt.verdict, KindHTTP)
			if out.StatusCode != tt.status || out.Err.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, Err.StatusCode = %d; want %d",
					out.StatusCode, out.Err.StatusCode, tt.status)
			}
			wantMessage(t, out, strconv.Itoa(tt.status))
			if out.RetryAfter != tt.wantAfter {
				t.Errorf("RetryAfter = %v; want %v", out.RetryAfter, tt.wantAfter)
			}
			wantBody := body[:evidenceBytes]
			if tt.status == http.StatusNotModified {
				wantBody = "" // a 304 has no body
			}
			if string(out.Body) != wantBody {
				t.Errorf("Body is %d bytes; want the first %d", len(out.Body), len(wantBody))
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const limit = time.Hour
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 7 ", 7 * time.Second},
		{"3600", time.Hour},
		{"3601", time.Hour},
		{"99999999999999999999999", time.Hour},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(time.Minute).Format(time.RFC850), time.Minute},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now, limit); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// TestDispatcher_Do_Concurrent runs many attempts at once on one
// Dispatcher, for the race detector.
func TestDispatcher_Do_Concurrent(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, success)
	d, _ := newTestDispatcher(t, Options{SigningSecrets: []string{testSecret}})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			out := d.Do(t.Context(), &Request{ID: strconv.Itoa(i), Method: "POST",
				URL: srv.URL, Args: url.Values{"i": {strconv.Itoa(i)}}})
			if out.Verdict != Succeeded {
				t.Errorf("attempt %d: %v", i, out.Err)
			}
		})
	}
	wg.Wait()
	if n := len(srv.requests()); n != 50 {
		t.Errorf("server got %d requests; want 50", n)
	}
}
