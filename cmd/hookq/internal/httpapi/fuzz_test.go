package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/hookq/hookq/queue"
)

// FuzzEnqueue sends arbitrary bodies to POST /v1/tasks on a real queue.
// Whatever the body, the handler must answer 201, 200 or a 4xx with a JSON
// error, never a 5xx or a panic; a task it accepts must read back as it was
// answered, and the store must stay sound.
func FuzzEnqueue(f *testing.F) {
	for _, seed := range []string{
		`{"url": "http://127.0.0.1:8000/multiply", "args": {"x": 10, "y": 10}}`,
		`{"url": "http://h/p", "method": "post", "json": {"a": [1, 2]}, "headers": {"X-A": "b"}}`,
		`{"url": "http://h/p", "args": {"l": [1, "a", true]}, "max_attempts": 1, "timeout": "2s"}`,
		`{"url": "http://h/p", "run_at": "2030-01-01T00:00:00Z", "key": "k", "protocol": "plain"}`,
		`{"url": "http://h/p", "args": {"x": {"nested": 1}}}`,
		`{"url": "http://h/p"} {"url": "http://h/q"}`,
		`{"url": "ftp://h/p"}`, `{"url": "http://h:99999/"}`, `{"url": "http://h/p", "extra": 1}`,
		`{"url": "http://h/p", "args": {"x": 1e400}}`, `{"url": "http://h/p", "timeout": "-1s"}`,
		`{"url": "http://h/p", "headers": {"X": "a\r\nB: c"}}`, `[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	q, err := queue.Open(filepath.Join(f.TempDir(), "hookq.db"), &queue.Options{
		DisableWorkers: true, NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		// f.Context is done by now.
		problems, err := q.Check(context.Background())
		if err != nil || len(problems) > 0 {
			f.Errorf("store check: %v %v", err, problems)
		}
		q.Close()
	})
	h := NewHandler(q, nil)

	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch code := rec.Code; {
		case code == http.StatusCreated || code == http.StatusOK:
			var got queue.Task
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("%d reply is not a task: %v\n%s", code, err, rec.Body)
			}
			stored, err := q.Get(t.Context(), got.ID)
			if err != nil {
				t.Fatalf("accepted task %s: %v", got.ID, err)
			}
			if stored.URL != got.URL || stored.Method != got.Method ||
				!bytes.Equal(stored.Args, got.Args) {
				t.Errorf("task read back differs from the reply:\n%+v\n%+v", stored, got)
			}
		case code >= 400 && code < 500:
			var er errorReply
			if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || er.Error == "" || er.Code == "" {
				t.Errorf("%d reply is not a JSON error: %s", code, rec.Body)
			}
		default:
			t.Fatalf("status %d for body %q:\n%s", code, body, rec.Body)
		}
	})
}
