package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hookq/hookq/queue"
)

// bundle is one test's queue, API server and receivers.
type bundle struct {
	q   *queue.Queue
	api *httptest.Server
}

// setup opens a real queue in a temp dir and serves its API over loopback.
func setup(t *testing.T) *bundle {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), "hookq.db"), &queue.Options{
		Workers:     4,
		BackoffBase: 10 * time.Millisecond,
		BackoffCap:  50 * time.Millisecond,
		Grace:       100 * time.Millisecond,
		NoSync:      true,
	})
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	api := httptest.NewServer(NewHandler(q, nil))
	t.Cleanup(api.Close)
	return &bundle{q: q, api: api}
}

// call sends one request to the API (a POST as JSON) and returns the
// status and body.
func (b *bundle) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	return b.callWith(t, method, path, body, nil)
}

// callWith is call with extra request headers (which override the JSON
// content type).
func (b *bundle) callWith(t *testing.T, method, path, body string, header http.Header) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, b.api.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := b.api.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q; want application/json", method, path, ct)
	}
	return resp.StatusCode, data
}

// task calls the API and decodes a task reply, failing unless the status
// is want.
func (b *bundle) task(t *testing.T, method, path, body string, want int) *queue.Task {
	t.Helper()
	status, data := b.call(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s = %d %s; want %d", method, path, status, data, want)
	}
	var task queue.Task
	if err := json.Unmarshal(data, &task); err != nil {
		t.Fatalf("decode task %s: %v", data, err)
	}
	return &task
}

// wantError checks an error reply's status and code.
func wantError(t *testing.T, status int, data []byte, wantStatus int, wantCode string) {
	t.Helper()
	var er errorReply
	if err := json.Unmarshal(data, &er); err != nil {
		t.Fatalf("decode error reply %s: %v", data, err)
	}
	if status != wantStatus || er.Code != wantCode || er.Error == "" {
		t.Errorf("reply = %d %s; want %d with code %q and a message", status, data, wantStatus, wantCode)
	}
}

// total returns the number of tasks stored.
func (b *bundle) total(t *testing.T) int64 {
	t.Helper()
	s, err := b.q.Stats(t.Context())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return s.Total
}

// multiply is a Celery endpoint answering x*y, or a failure reason.
func multiply(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, errX := strconv.Atoi(r.FormValue("x"))
		y, errY := strconv.Atoi(r.FormValue("y"))
		if errX != nil || errY != nil {
			io.WriteString(w, `{"status":"failure","reason":"x and y must be integers"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "retval": x * y})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// blocker is an endpoint that holds every request until the test ends, and
// signals each arrival on arrived.
type blocker struct {
	srv     *httptest.Server
	arrived chan struct{}
}

func newBlocker(t *testing.T) *blocker {
	t.Helper()
	b := &blocker{arrived: make(chan struct{}, 16)}
	release := make(chan struct{})
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(release) })
		b.srv.Close()
	})
	return b
}

// waitArrival blocks until the blocker has received a request.
func (b *blocker) waitArrival(t *testing.T) {
	t.Helper()
	select {
	case <-b.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the endpoint")
	}
}

// later is a run_at far in the future, for tasks that must stay scheduled.
func later() string {
	return time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
}
