package dispatch

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// redirectError is a redirect that the policy refuses. It fails the task:
// asking again would be answered the same way.
type redirectError struct {
	msg string
}

func (e *redirectError) Error() string { return e.msg }

// checkRedirect is the redirect policy of the Dispatcher's client. req is the
// next hop, via the requests made so far; req.Response is the redirect.
//
// GET and HEAD follow up to MaxRedirects hops. Other methods follow only 307
// and 308, which keep the method and body: a 301, 302 or 303 would turn them
// into a GET, which is not the call the task describes. No hop may leave
// https for http. The guard needs no hook here: it checks every dial.
func (d *Dispatcher) checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	status := req.Response.StatusCode
	loc := req.URL.Redacted()

	switch {
	case d.opts.MaxRedirects < 0:
		return http.ErrUseLastResponse
	case first.Method != http.MethodGet && first.Method != http.MethodHead &&
		(status == http.StatusMovedPermanently || status == http.StatusFound ||
			status == http.StatusSeeOther):
		return &redirectError{fmt.Sprintf(
			"redirect %d to %s would change %s to GET", status, loc, first.Method)}
	case req.URL.Scheme != "http" && req.URL.Scheme != "https":
		return &redirectError{fmt.Sprintf("redirect to %s: unsupported scheme", loc)}
	case req.URL.Scheme == "http" && wasHTTPS(via):
		return &redirectError{fmt.Sprintf("redirect to %s: https to http refused", loc)}
	case len(via) > d.opts.MaxRedirects:
		return &redirectError{fmt.Sprintf(
			"too many redirects: stopped after %d", d.opts.MaxRedirects)}
	}

	// The client sets Referer to the previous URL, which may carry a token
	// in its query and may belong to another host. Send only the user's.
	if ref := first.Header.Get("Referer"); ref != "" {
		req.Header.Set("Referer", ref)
	} else {
		req.Header.Del("Referer")
	}

	// A GET or HEAD signature covers the request target, which has
	// changed: sign the new one, with the same ID and timestamp.
	if len(d.keys) > 0 && signsTarget(req.Method) {
		id := req.Header.Get(headerWebhookID)
		secs, err := strconv.ParseInt(req.Header.Get(headerWebhookTimestamp), 10, 64)
		if err != nil {
			return &redirectError{"redirect: lost webhook-timestamp"}
		}
		payload := []byte(req.URL.RequestURI())
		req.Header.Set(headerWebhookSignature, d.signature(id, time.Unix(secs, 0), payload))
	}
	return nil
}

// wasHTTPS reports whether any request in via used https.
func wasHTTPS(via []*http.Request) bool {
	for _, r := range via {
		if r.URL.Scheme == "https" {
			return true
		}
	}
	return false
}
