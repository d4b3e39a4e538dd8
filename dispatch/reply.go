package dispatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Protocol says how the body of a 2xx reply is read.
type Protocol string

const (
	// Celery reads {"status":"success","retval":V} as success with result V
	// and {"status":"failure","reason":R} as a remote failure. Anything else
	// is an invalid response. It is the default.
	Celery Protocol = "celery"

	// Plain treats any 2xx as success. The result is the body when it is
	// JSON, else the body as a JSON string.
	Plain Protocol = "plain"
)

// Valid reports whether p names a known protocol. The empty Protocol is
// valid and means Celery.
func (p Protocol) Valid() bool {
	return p == "" || p == Celery || p == Plain
}

// Verdict is what the caller should do with a task after an attempt.
type Verdict int

const (
	// Succeeded means the task is done; Outcome.Result holds its result.
	Succeeded Verdict = iota + 1

	// Failed means the task failed for good: do not retry.
	Failed

	// Retry means the attempt failed for a reason that may pass: retry with
	// backoff, no earlier than Outcome.RetryAfter.
	Retry
)

// String returns "succeeded", "failed" or "retry".
func (v Verdict) String() string {
	switch v {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case Retry:
		return "retry"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Error kinds, the values of Error.Kind. They are part of the public JSON
// contract: never change a string.
const (
	// KindRemote means the endpoint answered {"status":"failure"}.
	KindRemote = "remote"

	// KindInvalidResponse means a 2xx body broke the protocol.
	KindInvalidResponse = "invalid_response"

	// KindHTTP means the endpoint answered with a status that is not 2xx.
	KindHTTP = "http"

	// KindTransport covers connection, DNS, TLS and redirect errors, an
	// attempt cancelled by its caller, and a Request that cannot be sent.
	KindTransport = "transport"

	// KindTimeout means the attempt outlived its deadline.
	KindTimeout = "timeout"

	// KindRefused means the dispatch guard refused every address of the host.
	KindRefused = "refused"

	// KindTooLarge means a 2xx body was over Options.MaxBodyBytes.
	KindTooLarge = "too_large"
)

// maxMessageBytes bounds Error.Message. A message may quote the endpoint
// (a failure reason, a status string), and the endpoint's words are evidence,
// not something to store without limit.
const maxMessageBytes = 1 << 10

// Error describes why an attempt did not succeed. It marshals to the error
// object of the public task JSON.
type Error struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`

	// Message says what happened, for people. It is valid UTF-8 and at
	// most about 1 KiB.
	Message string `json:"message"`

	// StatusCode is the HTTP status of the reply, or 0 when none came.
	StatusCode int `json:"status_code,omitempty"`
}

// Error returns "kind: message".
func (e *Error) Error() string {
	return e.Kind + ": " + e.Message
}

// Outcome is the result of one attempt.
type Outcome struct {
	// Verdict says what to do with the task next.
	Verdict Verdict

	// Result is the task's result when Verdict is Succeeded: valid, compact
	// JSON in valid UTF-8, possibly the literal null. It is nil otherwise.
	Result json.RawMessage

	// Err says why when Verdict is Failed or Retry; it is nil on success.
	Err *Error

	// RetryAfter is the delay asked for by a Retry-After header on a 429 or
	// 503 reply, capped at Options.MaxRetryAfter; 0 if none.
	RetryAfter time.Duration

	// StatusCode is the HTTP status of the last reply, 0 if none came.
	StatusCode int

	// Body is the first KiB of the last reply's body after decompression,
	// kept as evidence; nil if no reply came.
	Body []byte

	// Latency is how long the attempt took, from start to verdict.
	Latency time.Duration
}

// ParseReply reads the body of a 2xx reply under protocol p. It never
// panics, whatever body holds. The Outcome's Verdict is Succeeded or Failed
// (with KindRemote or KindInvalidResponse); its StatusCode, Body and Latency
// are left for the caller to fill.
func ParseReply(p Protocol, body []byte) Outcome {
	switch p {
	case "", Celery:
		return parseCelery(body)
	case Plain:
		return Outcome{Verdict: Succeeded, Result: plainResult(body)}
	}
	return invalidReply(fmt.Sprintf("unknown protocol %q", clip(string(p))))
}

// parseCelery reads {"status":"success","retval":V} or
// {"status":"failure","reason":R}. Keys match case-sensitively, as do the
// status values; other keys are ignored.
func parseCelery(body []byte) Outcome {
	if v, ok := cutCelery(body, successTokens); ok {
		return Outcome{Verdict: Succeeded, Result: normalizeJSON(v)}
	}
	if v, ok := cutCelery(body, failureTokens); ok {
		return Outcome{
			Verdict: Failed,
			Err:     &Error{Kind: KindRemote, Message: reasonText(v)},
		}
	}
	return parseCeleryFields(body)
}

// The tokens that open the two replies cutCelery knows, in the order
// endpoints write them.
var (
	successTokens = []string{`{`, `"status"`, `:`, `"success"`, `,`, `"retval"`, `:`}
	failureTokens = []string{`{`, `"status"`, `:`, `"failure"`, `,`, `"reason"`, `:`}
)

// cutCelery is the fast path of parseCelery. It exists because nearly every
// reply is one of two exact shapes, which decoding into a map takes some
// twenty allocations to read. If body is the JSON tokens of open, then one
// valid JSON value V, then "}", it returns V without surrounding
// whitespace. Such a body is an object of exactly two keys, so
// parseCeleryFields would read the same V from it. Anything else, such as
// other keys, another order or an escape in a key, reports false.
func cutCelery(body []byte, open []string) ([]byte, bool) {
	// The tokens, with JSON whitespace allowed around each.
	for _, tok := range open {
		body = trimJSONSpace(body)
		rest, ok := bytes.CutPrefix(body, []byte(tok))
		if !ok {
			return nil, false
		}
		body = rest
	}

	// Then the value, and the brace that closes the object.
	v, ok := bytes.CutSuffix(trimJSONSpace(body), []byte("}"))
	if !ok || !json.Valid(v) {
		return nil, false
	}
	return trimJSONSpace(v), true
}

// trimJSONSpace returns b without leading and trailing JSON whitespace.
// JSON knows four kinds: bytes.TrimSpace knows more.
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// isJSONSpace reports whether c is JSON whitespace.
func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// parseCeleryFields is parseCelery for any body, through a map of its keys.
func parseCeleryFields(body []byte) Outcome {
	// Sort out bodies that are not a JSON object, saying which.
	if len(bytes.TrimSpace(body)) == 0 {
		return invalidReply("empty body")
	}
	if !json.Valid(body) {
		return invalidReply("body is not valid JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return invalidReply("body is not a JSON object")
	}

	// The status must be present and a string.
	raw, ok := fields["status"]
	if !ok {
		return invalidReply(`body has no "status"`)
	}
	var status string
	if !isJSONString(raw) || json.Unmarshal(raw, &status) != nil {
		return invalidReply(`"status" is not a string`)
	}

	switch status {
	case "success":
		retval, ok := fields["retval"]
		if !ok {
			return invalidReply(`"success" without "retval"`)
		}
		return Outcome{Verdict: Succeeded, Result: normalizeJSON(retval)}
	case "failure":
		return Outcome{
			Verdict: Failed,
			Err:     &Error{Kind: KindRemote, Message: reasonText(fields["reason"])},
		}
	}
	return invalidReply(fmt.Sprintf("unknown status %q", clip(status)))
}

// plainResult is the result of a 2xx reply under the Plain protocol: the body
// itself when it is JSON, else the body as a JSON string.
func plainResult(body []byte) json.RawMessage {
	if json.Valid(body) {
		return normalizeJSON(body)
	}
	// Marshalling a string cannot fail; invalid UTF-8 becomes U+FFFD.
	s, _ := json.Marshal(string(body))
	return s
}

// reasonText turns the reason of a failure reply into a message: a string as
// it is, anything else as its JSON text.
func reasonText(raw json.RawMessage) string {
	if raw == nil || string(raw) == "null" {
		return "endpoint gave no reason"
	}
	var s string
	if isJSONString(raw) && json.Unmarshal(raw, &s) == nil {
		return clip(s)
	}
	return clip(string(normalizeJSON(raw)))
}

// invalidReply is the Outcome of a 2xx body that breaks the protocol.
func invalidReply(why string) Outcome {
	return Outcome{
		Verdict: Failed,
		Err:     &Error{Kind: KindInvalidResponse, Message: "invalid response: " + why},
	}
}

// isJSONString reports whether raw, a valid JSON value, is a string.
func isJSONString(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"'
}

// normalizeJSON returns a compact copy of the valid JSON value v in valid
// UTF-8, so results store and print the same everywhere.
func normalizeJSON(v []byte) json.RawMessage {
	// Strings holding invalid UTF-8 are valid to encoding/json but not to
	// every reader of our output. Decoding then encoding replaces the bad
	// bytes with U+FFFD; UseNumber keeps numbers exactly as written.
	if !utf8.Valid(v) {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		var x any
		if dec.Decode(&x) == nil {
			if out, err := json.Marshal(x); err == nil {
				return out
			}
		}
		s, _ := json.Marshal(string(v))
		return s
	}

	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return bytes.Clone(v)
	}
	return buf.Bytes()
}

// clip makes s fit in an Error.Message: valid UTF-8, at most maxMessageBytes
// plus an ellipsis, cut on a rune boundary.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxMessageBytes {
		return s
	}
	cut := maxMessageBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
