package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/hookq/hookq/internal/redact"
	"github.com/hookq/hookq/queue"
)

// Route is a named task of the Celery gateway: a request to /apply/{name}
// enqueues a call to URL with Method, whose arguments are the request's.
type Route struct {
	// URL is the absolute http or https URL the task calls.
	URL string `json:"url"`
	// Method is the task's HTTP method. Empty means GET.
	Method string `json:"method,omitempty"`
}

// routeName is what a route's name may be: a Celery task name such as
// "tasks.multiply", usable as one path segment.
var routeName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// CheckRoute returns an error if name and r cannot make a gateway route:
// a name of letters, digits and ._- (128 at most, not starting with . or
// -), an absolute http or https URL, a known method. It returns the route
// with its method upper-cased, GET when unset.
func CheckRoute(name string, r Route) (Route, error) {
	if !routeName.MatchString(name) {
		return r, fmt.Errorf("route name %q: use 1 to 128 letters, digits and ._- "+
			"(not starting with . or -)", name)
	}
	// The URL is not quoted in errors: it may hold a password.
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return r, fmt.Errorf("route %s: %q is not an absolute http or https URL", name,
			redact.URL(r.URL))
	}
	r.Method = strings.ToUpper(r.Method)
	switch r.Method {
	case "":
		r.Method = http.MethodGet
	case http.MethodHead:
		return r, fmt.Errorf("route %s: HEAD replies have no body, and the gateway's tasks "+
			"expect Celery's reply", name)
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		return r, fmt.Errorf("route %s: unknown method %q", name, r.Method)
	}
	// Whatever else a task checks (the port, say) is checked now, not at
	// the first request.
	spec := queue.Spec{URL: r.URL, Method: r.Method}
	if err := spec.Validate(); err != nil {
		return r, fmt.Errorf("route %s: %w", name, err)
	}
	return r, nil
}

// WithRoutes serves the Celery gateway: GET or POST /apply/{name} enqueues
// the task of the route named name, with the request's query arguments,
// and for a POST the fields of its form or JSON object body too (a body
// field replaces a query argument of the same name). It answers
// {"ok": "true", "task_id": "..."} with 200, as Celery's gateway did; an
// unknown name gets 404. Routes are taken as given: check them with
// CheckRoute first.
//
// A GET that enqueues can be sent by any web page (an <img> tag, say), so
// the gateway refuses cross-site requests whatever their method, as the
// rest of the API does for POST.
func WithRoutes(routes map[string]Route) Option {
	return func(h *handler) {
		h.routes = routes
		h.extra.HandleFunc("GET /apply/{name}", h.apply)
		h.extra.HandleFunc("POST /apply/{name}", h.apply)
	}
}

// ApplyReply is the reply of /apply/{name}.
type ApplyReply struct {
	// OK is "true", a string as in Celery's gateway.
	OK string `json:"ok"`
	// TaskID is the ID of the task enqueued.
	TaskID string `json:"task_id"`
}

// apply serves GET and POST /apply/{name}.
func (h *handler) apply(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		// A GET route answers HEAD too; a HEAD must not enqueue.
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, codeMethod, "method HEAD is not allowed on "+r.URL.Path)
		return
	}
	if r.Method == http.MethodGet {
		// Check a GET as the protection checks a POST: it changes state.
		post := *r
		post.Method = http.MethodPost
		if err := h.csrf.Check(&post); err != nil {
			writeError(w, http.StatusForbidden, CodeForeign, "cross-site request refused: "+err.Error())
			return
		}
	}
	name := r.PathValue("name")
	route, ok := h.routes[name]
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route named %q", name))
		return
	}
	args, status, err := applyArgs(r)
	if err != nil {
		code := CodeInvalid
		if status == http.StatusRequestEntityTooLarge {
			code = CodeTooLarge
		}
		writeError(w, status, code, err.Error())
		return
	}

	t, err := h.q.Enqueue(r.Context(), queue.Spec{URL: route.URL, Method: route.Method, Args: args})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ApplyReply{OK: "true", TaskID: t.ID.String()})
}

// applyArgs returns the task arguments of a gateway request: its query
// arguments, then the fields of a POST's body. A key given more than once
// becomes a list. On error it returns the status to answer with.
func applyArgs(r *http.Request) (map[string]any, int, error) {
	args := make(map[string]any)
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		// A malformed argument would otherwise be dropped in silence and
		// the task sent without it.
		return nil, http.StatusBadRequest, fmt.Errorf("query: %w", err)
	}
	for k, vs := range query {
		args[k] = formValue(vs)
	}
	if r.Method != http.MethodPost {
		return args, 0, nil
	}

	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case ct == "" && r.ContentLength == 0:
		return args, 0, nil // a POST without a body: the query alone
	case err != nil:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: %w", ct, err)
	case mt == "application/x-www-form-urlencoded":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyStatus(err), fmt.Errorf("read form: %w", err)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("parse form: %w", err)
		}
		for k, vs := range form {
			args[k] = formValue(vs)
		}
	case mt == "application/json":
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			return nil, bodyStatus(err), fmt.Errorf("decode arguments (a JSON object): %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, bodyStatus(err), errors.New("decode arguments: data after the JSON object")
		}
		for k, v := range fields {
			args[k] = v
		}
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: send the arguments "+
			"as application/x-www-form-urlencoded or application/json", mt)
	}
	return args, 0, nil
}

// bodyStatus returns 413 for a body over the limit, else 400.
func bodyStatus(err error) int {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// formValue returns one form value as a string, several as a list.
func formValue(vs []string) any {
	if len(vs) == 1 {
		return vs[0]
	}
	list := make([]any, len(vs))
	for i, v := range vs {
		list[i] = v
	}
	return list
}
