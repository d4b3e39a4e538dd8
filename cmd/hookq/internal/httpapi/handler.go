// Package httpapi is hookq's HTTP API: the handler that serves a queue over
// HTTP (on the TCP listener and on the unix socket of `hookq serve`) and a
// Client that speaks it. Requests and replies are JSON; errors are
// {"error": "...", "code": "..."} with a 4xx or 5xx status.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hookq/hookq/queue"
)

// Limits of the handler.
const (
	// MaxBodyBytes bounds the body of every request, POST /v1/tasks and
	// POST /apply/{name} included; a larger one is refused with 413.
	MaxBodyBytes = 2 << 20
	// DefaultWait is the long-poll time of /v1/tasks/{id}/wait when the
	// request sets no timeout.
	DefaultWait = 30 * time.Second
	// MaxWait bounds the long-poll time of /v1/tasks/{id}/wait; a longer
	// timeout is shortened to it (clients poll again).
	MaxWait = 5 * time.Minute
	// MaxBatchBodyBytes bounds the body of POST /v1/tasks/batch; a larger
	// one is refused with 413.
	MaxBatchBodyBytes = 32 << 20
	// MaxBatchTasks bounds the tasks of one POST /v1/tasks/batch.
	MaxBatchTasks = 1000
	// DefaultListLimit is the page size of GET /v1/tasks without a limit.
	DefaultListLimit = 100
	// MaxListLimit bounds the limit of GET /v1/tasks.
	MaxListLimit = 1000
)

// batchPath is the route of the batch enqueue, whose body limit is larger.
const batchPath = "/v1/tasks/batch"

// SocketHost is the host name the Client uses over hookq's unix socket.
const SocketHost = "hookq"

// Log attribute keys.
const (
	keyMethod   = "method"
	keyPath     = "path"
	keyStatus   = "status"
	keyDuration = "duration"
	keyError    = "error"
)

// handler serves one queue.
type handler struct {
	q    *queue.Queue
	log  *slog.Logger
	mux  *http.ServeMux
	csrf *http.CrossOriginProtection

	// extra holds the routes of options, tried before mux: a Celery
	// gateway route such as /apply/{name} would conflict with the Celery
	// views of mux (/{id}/status) if both were in one ServeMux.
	extra  *http.ServeMux
	routes map[string]Route // the Celery gateway's named routes

	// batches admits one batch enqueue at a time: decoding one takes
	// several times its body in memory, and bodies may be 32 MiB.
	batches chan struct{}
}

// NewHandler returns the HTTP API of q. It logs each request at Debug and
// each server-side failure at Error on logger; a nil logger logs nothing.
//
// The handler checks no credentials: it is meant for a loopback listener
// or a unix socket, or to be wrapped in RequireToken. Against web pages
// reaching it through a browser on the same host, it refuses cross-site
// requests that change state, requires a JSON content type to enqueue
// (which a page cannot send across sites without the server's consent),
// and answers only requests addressed to an IP address, localhost or
// hookq's socket, so a DNS name rebound to a loopback address gets
// nothing; a request that proved the token may use any name.
// The handler is safe for concurrent use. Long polls end when the request's
// context does, so a server should cancel its base context on shutdown.
// Request bodies are refused beyond MaxBodyBytes on every route but the
// batch enqueue, whose limit is MaxBatchBodyBytes.
func NewHandler(q *queue.Queue, logger *slog.Logger, opts ...Option) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{q: q, log: logger, mux: http.NewServeMux(), csrf: http.NewCrossOriginProtection(),
		batches: make(chan struct{}, 1),
		extra:   http.NewServeMux()}
	h.mux.HandleFunc("POST /v1/tasks", h.enqueue)
	h.mux.HandleFunc("POST "+batchPath, h.enqueueBatch)
	h.mux.HandleFunc("POST /v1/tasks/retry", h.retryAll)
	h.mux.HandleFunc("POST /v1/tasks/cancel", h.cancelAll)
	h.mux.HandleFunc("POST /v1/tasks/purge", h.purge)
	h.mux.HandleFunc("GET /v1/tasks", h.list)
	h.mux.HandleFunc("GET /v1/tasks/{id}", h.get)
	h.mux.HandleFunc("GET /v1/tasks/{id}/attempts", h.attempts)
	h.mux.HandleFunc("GET /v1/tasks/{id}/wait", h.wait)
	h.mux.HandleFunc("POST /v1/tasks/{id}/retry", h.retry)
	h.mux.HandleFunc("POST /v1/tasks/{id}/cancel", h.cancel)
	h.mux.HandleFunc("GET /v1/stats", h.stats)
	h.mux.HandleFunc("GET /v1/backup", h.backup)
	h.mux.HandleFunc("GET /v1/check", h.check)
	h.mux.HandleFunc("GET /healthz", h.health)
	h.mux.HandleFunc("GET /{id}/status", h.celeryStatus)
	h.mux.HandleFunc("GET /{id}/done", h.celeryDone)
	for _, o := range opts {
		o(h)
	}
	return h
}

// ServeHTTP routes the request, answering unknown routes and methods with
// JSON errors like every other failure.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	limit := int64(MaxBodyBytes)
	if r.URL.Path == batchPath {
		limit = MaxBatchBodyBytes
	}
	r.Body = http.MaxBytesReader(sw, r.Body, limit)
	if err := h.foreign(r); err != nil {
		writeError(sw, http.StatusForbidden, CodeForeign, err.Error())
	} else if _, pattern := h.extra.Handler(r); pattern != "" {
		h.extra.ServeHTTP(sw, r)
	} else if _, pattern := h.mux.Handler(r); pattern == "" {
		h.noRoute(sw, r)
	} else {
		h.mux.ServeHTTP(sw, r)
	}
	h.log.Debug("http request", slog.String(keyMethod, r.Method),
		slog.String(keyPath, r.URL.Path), slog.Int(keyStatus, sw.status),
		slog.Duration(keyDuration, time.Since(start)))
}

// foreign returns an error for a request that a web page, rather than a
// program, may have sent: a cross-site request that changes state, or one
// addressed to a host name other than localhost (DNS rebinding). A request
// that proved a bearer token (see RequireToken) may use any host name: a
// page cannot know the token.
func (h *handler) foreign(r *http.Request) error {
	if err := h.csrf.Check(r); err != nil {
		return fmt.Errorf("cross-site request refused: %w", err)
	}
	if authenticated(r.Context()) || isHealthCheck(r) {
		return nil
	}
	host := strings.ToLower(r.Host)
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	_, isIP := netip.ParseAddr(host)
	switch {
	case isIP == nil, host == "localhost", strings.HasSuffix(host, ".localhost"),
		host == SocketHost:
	default:
		return fmt.Errorf("requests must be addressed to an IP address or localhost, not %q", r.Host)
	}
	return nil
}

// isHealthCheck reports whether r is a health check, which any host name
// may address (load balancers probe by name, or send HTTP/1.0 with no
// Host at all): its answer reveals nothing.
func isHealthCheck(r *http.Request) bool {
	return r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}

// noRoute answers a request that matches no route: 404, or 405 with Allow
// when the path exists for other methods.
func (h *handler) noRoute(w http.ResponseWriter, r *http.Request) {
	mh, _ := h.mux.Handler(r)
	probe := &probeWriter{header: make(http.Header)}
	if eh, _ := h.extra.Handler(r); probeStatus(eh, r) == http.StatusMethodNotAllowed {
		mh = eh // a path of an option's route, with another method
	}
	mh.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, codeMethod,
			fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
	case http.StatusNotFound, 0:
		writeError(w, http.StatusNotFound, "no_route", "no such route: "+r.URL.Path)
	default:
		// A redirect to the cleaned path, say: pass it on.
		for k, v := range probe.header {
			w.Header()[k] = v
		}
		w.WriteHeader(probe.status)
	}
}

// enqueue serves POST /v1/tasks.
func (h *handler) enqueue(w http.ResponseWriter, r *http.Request) {
	if !isJSON(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	spec, err := decodeSpec(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
				fmt.Sprintf("request body is over the limit of %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, CodeInvalid, err.Error())
		return
	}

	t, err := h.q.Enqueue(r.Context(), spec)
	if err != nil {
		h.fail(w, r, err)
		return
	}

	// A task an idempotency key matched was not stored anew: 200.
	status := http.StatusCreated
	if t.Existing {
		status = http.StatusOK
	} else {
		w.Header().Set("Location", "/v1/tasks/"+t.ID.String())
	}
	writeJSON(w, status, t)
}

// isJSON reports whether the request's body is declared as JSON, and
// answers 415 when it is not.
func isJSON(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, CodeInvalid,
			"a task is sent as JSON: set Content-Type: application/json")
		return false
	}
	return true
}

// decodeSpec reads one task object, refusing unknown fields and anything
// after the object. Numbers keep their text.
func decodeSpec(body io.Reader) (queue.Spec, error) {
	var spec queue.Spec
	dec := json.NewDecoder(body)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return spec, errors.New("decode task: empty body")
		}
		return spec, fmt.Errorf("decode task: %w", DecodeError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return spec, err
		}
		return spec, errors.New("decode task: data after the task object")
	}
	return spec, nil
}

// onTask runs op on the task named by the request's path and returns its
// result; on a bad ID or an error it answers the request itself and
// returns false.
func (h *handler) onTask(w http.ResponseWriter, r *http.Request,
	op func(context.Context, queue.ID) (*queue.Task, error)) (*queue.Task, bool) {
	id, ok := pathID(w, r)
	if !ok {
		return nil, false
	}
	t, err := op(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return t, true
}

// get serves GET /v1/tasks/{id}.
func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	if t, ok := h.onTask(w, r, h.q.Get); ok {
		writeJSON(w, http.StatusOK, t)
	}
}

// list serves GET /v1/tasks?state=S&url=TEXT&limit=N&before=ID.
func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	opts := queue.ListOptions{Limit: DefaultListLimit}
	query := r.URL.Query()
	if s := query.Get("state"); s != "" {
		st, err := queue.ParseState(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalid, err.Error())
			return
		}
		opts.State = st
	}
	if s := query.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			writeError(w, http.StatusBadRequest, CodeInvalid,
				fmt.Sprintf("limit %q is not a number from 1 to %d", s, MaxListLimit))
			return
		}
		opts.Limit = n
	}
	opts.URL = query.Get("url")
	if s := query.Get("before"); s != "" {
		id, err := queue.ParseID(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalid, "before: "+err.Error())
			return
		}
		opts.Before = &id
	}

	tasks, err := h.q.List(r.Context(), opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if tasks == nil {
		tasks = []*queue.Task{}
	}
	writeJSON(w, http.StatusOK, tasks)
}

// attempts serves GET /v1/tasks/{id}/attempts.
func (h *handler) attempts(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	atts, err := h.q.Attempts(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if atts == nil {
		atts = []queue.Attempt{}
	}
	writeJSON(w, http.StatusOK, atts)
}

// wait serves GET /v1/tasks/{id}/wait?timeout=DUR, a long poll: it answers
// with the task once it is final, or with the task as it is when the
// timeout passes. Clients tell the two apart by the task's state.
func (h *handler) wait(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	d := DefaultWait
	if s := r.URL.Query().Get("timeout"); s != "" {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, CodeInvalid,
				fmt.Sprintf("timeout %q is not a duration such as 30s", s))
			return
		}
	}
	d = min(d, MaxWait)

	ctx, cancel := context.WithTimeout(r.Context(), d)
	t, err := h.q.Wait(ctx, id)
	cancel()
	if err != nil && r.Context().Err() == nil && ctx.Err() != nil {
		// The poll's time is up: report the task as it is now.
		t, err = h.q.Get(r.Context(), id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// retry serves POST /v1/tasks/{id}/retry.
func (h *handler) retry(w http.ResponseWriter, r *http.Request) {
	if t, ok := h.onTask(w, r, h.q.Retry); ok {
		writeJSON(w, http.StatusOK, t)
	}
}

// cancel serves POST /v1/tasks/{id}/cancel.
func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	if t, ok := h.onTask(w, r, h.q.Cancel); ok {
		writeJSON(w, http.StatusOK, t)
	}
}

// stats serves GET /v1/stats.
func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	s, err := h.q.Stats(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// health serves GET /healthz: 200 when the store answers a read.
func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	if _, err := h.q.Stats(r.Context()); err != nil {
		h.log.Warn("health check failed", slog.Any(keyError, err))
		writeError(w, http.StatusServiceUnavailable, CodeClosed, "store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// pathID parses the {id} of the route, answering 400 when it is malformed.
func pathID(w http.ResponseWriter, r *http.Request) (queue.ID, bool) {
	id, err := queue.ParseID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalid, err.Error())
		return id, false
	}
	return id, true
}

// fail answers with the status that err calls for, logging failures that
// are the server's own.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	if status >= 500 && code != CodeClosed {
		h.log.Error("http request failed", slog.String(keyMethod, r.Method),
			slog.String(keyPath, r.URL.Path), slog.Any(keyError, err))
	}
	msg := err.Error()
	if code == CodeClosed && r.Context().Err() != nil {
		msg = "server is shutting down"
	}
	writeError(w, status, code, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorReply{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorReply{Error: "encode reply: " + err.Error(), Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// statusWriter remembers the status written, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeStatus returns the status h would answer r with, without answering.
func probeStatus(h http.Handler, r *http.Request) int {
	probe := &probeWriter{header: make(http.Header)}
	h.ServeHTTP(probe, r)
	return probe.status
}

// probeWriter records what the mux's own 404 and 405 handlers would send.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }

func (p *probeWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}
