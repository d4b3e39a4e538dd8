package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookq/hookq/queue"
)

func TestHandler_EnqueueBatch(t *testing.T) {
	b := setup(t)
	at := later()
	body := fmt.Sprintf(`[{"url":"http://127.0.0.1:1/a","run_at":%q,"key":"k1"},
		{"url":"http://127.0.0.1:1/b","run_at":%q,"args":{"n":1.50}}]`, at, at)
	status, data := b.call(t, "POST", "/v1/tasks/batch", body)
	if status != http.StatusCreated {
		t.Fatalf("POST /v1/tasks/batch = %d %s; want 201", status, data)
	}
	var reply struct {
		Tasks []struct {
			URL  string          `json:"url"`
			Args json.RawMessage `json:"args"`
		} `json:"tasks"`
		Existing []int `json:"existing"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		t.Fatal(err)
	}
	if len(reply.Tasks) != 2 || reply.Existing == nil || len(reply.Existing) != 0 ||
		reply.Tasks[1].URL != "http://127.0.0.1:1/b" {
		t.Fatalf("reply = %s; want two tasks in order and no existing", data)
	}
	if args := string(reply.Tasks[1].Args); args != `{"n":1.50}` {
		t.Errorf("args = %s; want the number's text kept", args)
	}

	// The key matches the kept task: 200 when every spec matched.
	status, data = b.call(t, "POST", "/v1/tasks/batch",
		fmt.Sprintf(`[{"url":"http://127.0.0.1:1/a","run_at":%q,"key":"k1"}]`, at))
	if status != http.StatusOK || !strings.Contains(string(data), `"existing":[0]`) {
		t.Errorf("batch of a matched key = %d %s; want 200 and existing [0]", status, data)
	}

	// All or none: one bad task stores nothing.
	before := b.total(t)
	status, data = b.call(t, "POST", "/v1/tasks/batch",
		`[{"url":"http://127.0.0.1:1/ok"},{"url":"ftp://127.0.0.1/"}]`)
	wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
	if !strings.Contains(string(data), "task 1") {
		t.Errorf("error %s does not name task 1", data)
	}
	if n := b.total(t); n != before {
		t.Errorf("a failed batch stored %d tasks", n-before)
	}

	for name, body := range map[string]string{
		"NotArray":     `{"url":"http://127.0.0.1:1/"}`,
		"UnknownField": `[{"url":"http://127.0.0.1:1/","colour":"red"}]`,
		"Trailing":     `[] []`,
	} {
		status, data := b.call(t, "POST", "/v1/tasks/batch", body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d %s; want 400", name, status, data)
		}
	}
	tooMany := "[" + strings.Repeat(`{"url":"http://127.0.0.1:1/"},`, MaxBatchTasks) +
		`{"url":"http://127.0.0.1:1/"}]`
	status, data = b.call(t, "POST", "/v1/tasks/batch", tooMany)
	wantError(t, status, data, http.StatusRequestEntityTooLarge, CodeTooLarge)
	// A batch over the limit of one task's body, within its own, is taken.
	large := "[" + strings.Repeat(`{"url":"http://127.0.0.1:1/","json":"`+
		strings.Repeat("x", 4000)+`"},`, 999) + `{"url":"http://127.0.0.1:1/"}]`
	if len(large) <= MaxBodyBytes || len(large) >= MaxBatchBodyBytes {
		t.Fatalf("the large batch is %d bytes; want it between the limits", len(large))
	}
	if status, data = b.call(t, "POST", "/v1/tasks/batch", large); status != http.StatusCreated {
		t.Errorf("a %d-byte batch: %d %.200s; want 201", len(large), status, data)
	}
	huge := `[{"url":"http://127.0.0.1:1/","json":"` + strings.Repeat("x", MaxBatchBodyBytes) + `"}]`
	status, data = b.call(t, "POST", "/v1/tasks/batch", huge)
	wantError(t, status, data, http.StatusRequestEntityTooLarge, CodeTooLarge)
	status, data = b.callWith(t, "POST", "/v1/tasks/batch", `[]`,
		http.Header{"Content-Type": {"text/plain"}})
	wantError(t, status, data, http.StatusUnsupportedMediaType, CodeInvalid)
}

func TestHandler_Bulk(t *testing.T) {
	b := setup(t)
	at := later()
	blocker := newBlocker(t) // holds retried tasks active: 3 tasks, 4 workers
	for range 3 {
		b.task(t, "POST", "/v1/tasks", fmt.Sprintf(`{"url":%q,"run_at":%q}`, blocker.srv.URL, at),
			http.StatusCreated)
	}

	tests := []struct {
		name, path string
		status     int
		reply      string
		code       string
	}{
		{"RetryNotFinal", "/v1/tasks/retry?state=scheduled", 409, "", CodeNotFinal},
		{"RetryNoState", "/v1/tasks/retry", 400, "", CodeInvalid},
		{"CancelBadState", "/v1/tasks/cancel?state=done", 400, "", CodeInvalid},
		{"CancelFinal", "/v1/tasks/cancel?state=failed", 409, "", CodeFinal},
		{"Cancel", "/v1/tasks/cancel?state=scheduled", 200, `{"cancelled":3}`, ""},
		{"Retry", "/v1/tasks/retry?state=cancelled", 200, `{"retried":3}`, ""},
		{"WaitActive", "", 0, "", ""},
		{"CancelActive", "/v1/tasks/cancel?state=active", 200, `{"cancelled":3}`, ""},
		{"PurgeRecent", "/v1/tasks/purge?older_than=1h", 200, `{"deleted":0}`, ""},
		{"PurgeNoAge", "/v1/tasks/purge", 400, "", CodeInvalid},
		{"PurgeNotFinal", "/v1/tasks/purge?older_than=0s&state=pending", 409, "", CodeNotFinal},
		{"Purge", "/v1/tasks/purge?older_than=0s&state=cancelled", 200, `{"deleted":3}`, ""},
	}
	for _, tt := range tests {
		if tt.path == "" { // the retried tasks reach the endpoint
			for range 3 {
				blocker.waitArrival(t)
			}
			continue
		}
		status, data := b.call(t, "POST", tt.path, "")
		if tt.code != "" {
			wantError(t, status, data, tt.status, tt.code)
			continue
		}
		if status != tt.status || strings.TrimSpace(string(data)) != tt.reply {
			t.Errorf("%s: POST %s = %d %s; want %d %s", tt.name, tt.path, status, data,
				tt.status, tt.reply)
		}
	}
	if n := b.total(t); n != 0 {
		t.Errorf("%d tasks left; want 0", n)
	}
}

func TestClient_Bulk(t *testing.T) {
	b := setup(t)
	c := unixClient(t, b)
	ctx := t.Context()
	at := time.Now().Add(time.Hour)
	specs := []queue.Spec{
		{URL: "http://u:pw@127.0.0.1:1/a", RunAt: &at, Key: "k"},
		{URL: "http://127.0.0.1:1/b", RunAt: &at},
	}
	tasks, err := c.EnqueueMany(ctx, specs)
	if err != nil || len(tasks) != 2 || tasks[0].Existing {
		t.Fatalf("EnqueueMany = %v, %v; want 2 new tasks", tasks, err)
	}
	again, err := c.EnqueueMany(ctx, specs[:1])
	if err != nil || !again[0].Existing || again[0].ID != tasks[0].ID {
		t.Errorf("EnqueueMany of a kept key = %v, %v; want the kept task, existing", again, err)
	}
	if list, err := c.List(ctx, queue.ListOptions{URL: "xxxxx@"}); err != nil || len(list) != 1 {
		t.Errorf("List(url xxxxx@) = %v, %v; want 1 task", list, err)
	}
	if n, err := c.CancelAll(ctx, queue.Scheduled); err != nil || n != 2 {
		t.Errorf("CancelAll = %d, %v; want 2", n, err)
	}
	if n, err := c.Purge(ctx, 0, queue.Cancelled); err != nil || n != 2 {
		t.Errorf("Purge = %d, %v; want 2", n, err)
	}
	if n, err := c.RetryAll(ctx, queue.Cancelled); err != nil || n != 0 {
		t.Errorf("RetryAll = %d, %v; want 0", n, err)
	}
	if _, err := c.RetryAll(ctx, queue.Pending); !errors.Is(err, queue.ErrNotFinal) {
		t.Errorf("RetryAll(pending) = %v; want ErrNotFinal", err)
	}
	if n, err := c.Purge(ctx, 0, queue.Succeeded); err != nil || n != 0 {
		t.Errorf("Purge = %d, %v; want 0", n, err)
	}
}

// TestHandler_BatchesTakeTurns: batches are stored one at a time (to bound
// the memory their decoding takes), and concurrent ones all get through.
func TestHandler_BatchesTakeTurns(t *testing.T) {
	b := setup(t)
	body := "[" + strings.Repeat(`{"url":"http://127.0.0.1:1/","run_at":"2099-01-01T00:00:00Z"},`, 99) +
		`{"url":"http://127.0.0.1:1/","run_at":"2099-01-01T00:00:00Z"}]`
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if status, data := b.call(t, "POST", "/v1/tasks/batch", body); status != http.StatusCreated {
				t.Errorf("concurrent batch: %d %.200s", status, data)
			}
		})
	}
	wg.Wait()
	s, err := b.q.Stats(t.Context())
	if err != nil || s.Total != 600 {
		t.Errorf("stats after 6 batches of 100: %v %v; want 600 tasks", s, err)
	}
}
