package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/storage"
)

// ErrInvalid reports a task that cannot be enqueued as described. The
// error's text says which field is wrong and why.
var ErrInvalid = errors.New("invalid task")

// Spec describes a task to enqueue. Its JSON form is the input half of the
// task object of hookq's HTTP API.
type Spec struct {
	// URL is the absolute http or https URL to call, in valid UTF-8.
	// Required.
	URL string `json:"url"`
	// Method is the HTTP method, case-insensitive: GET, HEAD, POST, PUT,
	// PATCH, DELETE or OPTIONS. Defaults to GET, or POST when JSON is set.
	Method string `json:"method,omitempty"`
	// Args are sent in the query (GET, HEAD, or any method with a JSON
	// body) or as a form body. Values are strings, numbers or booleans, or
	// lists of those, sent as repeated keys. Nil means none.
	Args map[string]any `json:"args,omitempty"`
	// Headers are extra request headers, with values in valid UTF-8. They
	// cannot set the headers hookq and the transport own (Host,
	// Content-Length, Content-Type, User-Agent, webhook-*, hop-by-hop
	// headers).
	Headers map[string]string `json:"headers,omitempty"`
	// JSON, if set, is sent as the body with Content-Type application/json.
	JSON json.RawMessage `json:"json,omitempty"`
	// Protocol says how the reply is read: "celery" (the default) or "plain".
	Protocol string `json:"protocol,omitempty"`
	// MaxAttempts bounds the attempts; 1 means no retry. Zero means the
	// queue's default (10).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Timeout is the deadline of each attempt. Zero means the queue's
	// default (15s).
	Timeout storage.Duration `json:"timeout,omitempty"`
	// RunAt delays the first attempt until then. Nil means now.
	RunAt *time.Time `json:"run_at,omitempty"`
	// Key is an idempotency key, in valid UTF-8: while a task with this key
	// is kept (and not cancelled), enqueueing another with it returns that
	// task instead.
	Key string `json:"key,omitempty"`
}

// Limits of a task.
const (
	// MaxTaskAttempts bounds Spec.MaxAttempts.
	MaxTaskAttempts = 1000
	// MaxTaskTimeout bounds Spec.Timeout.
	MaxTaskTimeout = time.Hour
)

// Limits on what one task may carry, so one record stays small.
const (
	maxURLLen    = 8 << 10
	maxKeyLen    = 256
	maxBodyLen   = 1 << 20
	maxHeaderLen = 16 << 10
)

var methods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true,
	"PATCH": true, "DELETE": true, "OPTIONS": true,
}

// protectedHeaders are request headers that hookq or the transport sets.
var protectedHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true,
	"user-agent": true, "connection": true, "keep-alive": true,
	"proxy-authorization": true, "proxy-authenticate": true, "proxy-connection": true,
	"te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
	"content-encoding": true, "accept-encoding": true,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports whether the spec can be enqueued, with an error
// wrapping ErrInvalid that says which field is wrong. Enqueue checks the
// same; Validate lets a caller check a batch before it sends any of it.
func (s *Spec) Validate() error {
	var t storage.Task
	return fillTask(&t, s, &Options{}, nil)
}

// fillTask validates spec and sets t to the task it describes, with the
// defaults of o filled in. It does not set the ID or the times. urls, if
// not nil, remembers the URL last found valid, so that a batch of tasks
// to one URL checks it once.
func fillTask(t *storage.Task, spec *Spec, o *Options, urls *urlCheck) error {
	*t = storage.Task{
		URL:         strings.TrimSpace(spec.URL),
		Method:      strings.ToUpper(strings.TrimSpace(spec.Method)),
		Protocol:    spec.Protocol,
		MaxAttempts: spec.MaxAttempts,
		Timeout:     spec.Timeout,
		Headers:     spec.Headers,
	}

	// URL and method.
	if err := urls.check(t.URL); err != nil {
		return err
	}
	if t.Method == "" {
		t.Method = "GET"
		if spec.JSON != nil {
			t.Method = "POST"
		}
	}
	if !methods[t.Method] {
		return invalid("method %q is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
			spec.Method)
	}

	// Arguments, body and headers.
	args, err := encodeArgs(spec.Args)
	if err != nil {
		return err
	}
	t.Args = args
	if spec.JSON != nil && !bytes.Equal(bytes.TrimSpace(spec.JSON), []byte("null")) {
		if t.Method == "GET" || t.Method == "HEAD" {
			return invalid("a JSON body needs a method that sends a body, not %s", t.Method)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, spec.JSON); err != nil {
			return invalid("json body is not valid JSON: %v", err)
		}
		if buf.Len() > maxBodyLen {
			return invalid("json body is %d bytes; the limit is %d", buf.Len(), maxBodyLen)
		}
		t.JSON = buf.Bytes()
	}
	if err := checkHeaders(t.Headers); err != nil {
		return err
	}

	// Policy.
	switch t.Protocol {
	case "":
		t.Protocol = "celery"
	case "celery", "plain":
	default:
		return invalid("protocol %q is not celery or plain", t.Protocol)
	}
	switch {
	case t.MaxAttempts < 0 || t.MaxAttempts > MaxTaskAttempts:
		return invalid("max_attempts %d is not between 1 and %d", t.MaxAttempts, MaxTaskAttempts)
	case t.MaxAttempts == 0:
		t.MaxAttempts = o.MaxAttempts
	}
	switch {
	case t.Timeout < 0 || time.Duration(t.Timeout) > MaxTaskTimeout:
		return invalid("timeout %s is not between 0 and %s", time.Duration(t.Timeout), MaxTaskTimeout)
	case t.Timeout == 0:
		t.Timeout = storage.Duration(o.Timeout)
	}
	if len(spec.Key) > maxKeyLen {
		return invalid("key is %d bytes; the limit is %d", len(spec.Key), maxKeyLen)
	}
	if !utf8.ValidString(spec.Key) {
		return invalid("key is not valid UTF-8")
	}
	if spec.Key != "" {
		k := spec.Key
		t.Key = &k
	}
	if spec.RunAt != nil {
		// Times are stored in int64 nanoseconds since 1970; past 2262
		// they would wrap into the past and run at once.
		at := spec.RunAt.UTC()
		if at.After(maxRunAt) {
			return invalid("run_at %s is after %s", at.Format(time.RFC3339), maxRunAt.Format(time.RFC3339))
		}
		t.RunAt = &at
	}
	return nil
}

// maxRunAt is the latest run time a task may ask for.
var maxRunAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// urlCheck checks URLs with checkURL, and remembers the last valid one,
// and, with known set, the valid URLs of recent enqueues. A nil *urlCheck
// remembers nothing.
type urlCheck struct {
	valid string
	known *knownURLs
}

func (c *urlCheck) check(raw string) error {
	if c != nil && raw == c.valid && raw != "" {
		return nil
	}
	if c != nil && c.known != nil && c.known.has(raw) {
		c.valid = raw
		return nil
	}
	if err := checkURL(raw); err != nil {
		return err
	}
	if c != nil {
		c.valid = raw
		if c.known != nil {
			c.known.add(raw)
		}
	}
	return nil
}

// maxKnownURLs bounds knownURLs; past it, it starts again empty.
const maxKnownURLs = 256

// knownURLs remembers URLs that passed checkURL, which depends on the URL
// alone. Most tasks of a queue go to a few endpoints, and parsing the URL
// was 6% of the CPU of enqueues from 256 producers. Safe for concurrent
// use; reads take no lock.
type knownURLs struct {
	m sync.Map     // string → struct{}
	n atomic.Int64 // additions since the last reset, roughly
}

func (k *knownURLs) has(raw string) bool {
	_, ok := k.m.Load(raw)
	return ok
}

func (k *knownURLs) add(raw string) {
	if k.n.Add(1) > maxKnownURLs {
		k.m.Clear()
		k.n.Store(1)
	}
	k.m.Store(raw, struct{}{})
}

func checkURL(raw string) error {
	if raw == "" {
		return invalid("url is required")
	}
	if len(raw) > maxURLLen {
		return invalid("url is %d bytes; the limit is %d", len(raw), maxURLLen)
	}
	u, err := redact.ParseURL(raw) // its error hides a password
	if err != nil {
		return invalid("url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("url scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return invalid("url %q has no host", storage.RedactURL(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid("url port %q is not a number from 1 to 65535", p)
		}
	}
	if strings.ContainsAny(raw, "\r\n\x00 ") {
		return invalid("url contains a space or control character")
	}
	if !utf8.ValidString(raw) {
		return invalid("url is not valid UTF-8")
	}
	return nil
}

func checkHeaders(h map[string]string) error {
	size := 0
	seen := make(map[string]string, len(h))
	for k, v := range h {
		if k == "" || !isToken(k) {
			return invalid("header name %q is not a valid HTTP token", k)
		}
		lk := strings.ToLower(k)
		if protectedHeaders[lk] || strings.HasPrefix(lk, "webhook-") {
			return invalid("header %s is set by hookq and cannot be overridden", k)
		}
		if other, dup := seen[lk]; dup {
			return invalid("headers %s and %s are the same header", other, k)
		}
		seen[lk] = k
		for _, c := range []byte(v) {
			// Tab is the only control character a header value may hold.
			if c < 0x20 && c != '\t' || c == 0x7f {
				return invalid("header %s contains the control character %q", k, c)
			}
		}
		if !utf8.ValidString(v) {
			return invalid("header %s is not valid UTF-8", k)
		}
		size += len(k) + len(v)
	}
	if size > maxHeaderLen {
		return invalid("headers are %d bytes; the limit is %d", size, maxHeaderLen)
	}
	return nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// encodeArgs checks argument values and returns their canonical JSON
// object, keys sorted.
func encodeArgs(args map[string]any) (json.RawMessage, error) {
	var few [8]string // most tasks have a few arguments: no allocation
	keys := few[:0]
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	b := make([]byte, 0, 16*len(args)+2)
	b = append(b, '{')
	for i, k := range keys {
		if k == "" {
			return nil, invalid("argument with an empty name")
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendArg(b, args[k], true); err != nil {
			return nil, invalid("argument %q: %v", k, err)
		}
	}
	b = append(b, '}')
	if len(b) > maxBodyLen {
		return nil, invalid("arguments are %d bytes; the limit is %d", len(b), maxBodyLen)
	}
	return b, nil
}

// appendJSONString appends s as a JSON string. Plain ASCII is written as
// it is; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendArg appends the JSON form of one argument value; lists are
// allowed only at the top.
func appendArg(b []byte, v any, top bool) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int8, int16, int32, uint, uint8, uint16, uint32, uint64:
		n, _ := json.Marshal(x) // integers always marshal
		return append(b, n...), nil
	case float32:
		return appendArg(b, float64(x), top)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("NaN and infinities cannot be sent")
		}
		n, _ := json.Marshal(x)
		return append(b, n...), nil
	case json.Number:
		// Float64 alone would let NaN, Inf and hex forms through.
		if x == "" || !(x[0] == '-' || x[0] >= '0' && x[0] <= '9') || !json.Valid([]byte(x)) {
			return nil, fmt.Errorf("bad number %q", string(x))
		}
		return append(b, x...), nil
	case nil:
		return nil, errors.New("null is not a value (use a string, number or boolean)")
	}
	if !top {
		return nil, fmt.Errorf("a list may hold only strings, numbers and booleans, not %T", v)
	}
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	case []string:
		for _, s := range x {
			items = append(items, s)
		}
	case []int:
		for _, n := range x {
			items = append(items, n)
		}
	case []float64:
		for _, n := range x {
			items = append(items, n)
		}
	case []bool:
		for _, n := range x {
			items = append(items, n)
		}
	default:
		return nil, fmt.Errorf("a value must be a string, number, boolean or a list of those, not %T", v)
	}
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendArg(b, it, false); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}
