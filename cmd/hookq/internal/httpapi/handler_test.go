package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/hookq/hookq/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHandler_Enqueue(t *testing.T) {
	t.Run("Created", func(t *testing.T) {
		b := setup(t)
		recv := multiply(t)
		body := fmt.Sprintf(`{"url":%q,"args":{"x":10,"y":"10"},"max_attempts":3,"timeout":"5s"}`,
			recv.URL+"/multiply")
		status, data := b.call(t, "POST", "/v1/tasks", body)
		if status != http.StatusCreated {
			t.Fatalf("POST /v1/tasks = %d %s; want 201", status, data)
		}
		var got map[string]any
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		for _, key := range []string{"url", "method", "args", "headers", "json", "protocol",
			"max_attempts", "timeout", "run_at", "key", "id", "state", "attempts",
			"created_at", "finished_at", "result", "error"} {
			if _, ok := got[key]; !ok {
				t.Errorf("task JSON has no %q field: %s", key, data)
			}
		}
		if got["method"] != "GET" || got["protocol"] != "celery" || got["timeout"] != "5s" {
			t.Errorf("defaults not filled in: %s", data)
		}
		if args, _ := json.Marshal(got["args"]); string(args) != `{"x":10,"y":"10"}` {
			t.Errorf("args = %s; want {\"x\":10,\"y\":\"10\"}", args)
		}
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		b := setup(t)
		body := fmt.Sprintf(`{"url":"http://127.0.0.1:1/x","key":"k1","run_at":%q}`, later())
		first := b.task(t, "POST", "/v1/tasks", body, http.StatusCreated)
		second := b.task(t, "POST", "/v1/tasks", body, http.StatusOK)
		if first.ID != second.ID {
			t.Errorf("second enqueue with the same key made task %s; want %s", second.ID, first.ID)
		}
		if n := b.total(t); n != 1 {
			t.Errorf("stored %d tasks; want 1", n)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		tests := []struct {
			name, body string
		}{
			{"EmptyBody", ``},
			{"NotJSON", `{"url":`},
			{"NotAnObject", `[1,2]`},
			{"NoURL", `{}`},
			{"BadURL", `{"url":"not a url"}`},
			{"NoHost", `{"url":"http:///path"}`},
			{"FTPScheme", `{"url":"ftp://127.0.0.1/file"}`},
			{"UnknownMethod", `{"url":"http://127.0.0.1/","method":"FETCH"}`},
			{"NullArg", `{"url":"http://127.0.0.1/","args":{"x":null}}`},
			{"NestedArg", `{"url":"http://127.0.0.1/","args":{"x":{"y":1}}}`},
			{"NestedList", `{"url":"http://127.0.0.1/","args":{"x":[[1]]}}`},
			{"HeaderCRLF", `{"url":"http://127.0.0.1/","headers":{"X-A":"a\r\nX-B: b"}}`},
			{"ProtectedHeader", `{"url":"http://127.0.0.1/","headers":{"Host":"evil"}}`},
			{"UnknownField", `{"url":"http://127.0.0.1/","colour":"red"}`},
			{"OutputField", `{"url":"http://127.0.0.1/","state":"succeeded"}`},
			{"BadTimeout", `{"url":"http://127.0.0.1/","timeout":"soon"}`},
			{"BadRunAt", `{"url":"http://127.0.0.1/","run_at":"tomorrow"}`},
			{"BadProtocol", `{"url":"http://127.0.0.1/","protocol":"soap"}`},
			{"JSONBodyOnGET", `{"url":"http://127.0.0.1/","method":"GET","json":{"a":1}}`},
			{"TrailingData", `{"url":"http://127.0.0.1/"} {"url":"http://127.0.0.1/"}`},
		}
		b := setup(t)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, data := b.call(t, "POST", "/v1/tasks", tt.body)
				wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
			})
		}
		if n := b.total(t); n != 0 {
			t.Errorf("stored %d tasks after invalid requests; want 0", n)
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		b := setup(t)
		body := `{"url":"http://127.0.0.1/","json":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
		status, data := b.call(t, "POST", "/v1/tasks", body)
		wantError(t, status, data, http.StatusRequestEntityTooLarge, CodeTooLarge)
		if n := b.total(t); n != 0 {
			t.Errorf("stored %d tasks; want 0", n)
		}
	})
}

func TestHandler_Get(t *testing.T) {
	b := setup(t)
	created := b.task(t, "POST", "/v1/tasks",
		fmt.Sprintf(`{"url":"http://127.0.0.1:1/","run_at":%q}`, later()), http.StatusCreated)

	t.Run("Found", func(t *testing.T) {
		got := b.task(t, "GET", "/v1/tasks/"+created.ID.String(), "", http.StatusOK)
		if got.ID != created.ID || got.State != queue.Scheduled {
			t.Errorf("got task %s in state %s; want %s scheduled", got.ID, got.State, created.ID)
		}
	})
	t.Run("BadID", func(t *testing.T) {
		status, data := b.call(t, "GET", "/v1/tasks/nope", "")
		wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
	})
	t.Run("Unknown", func(t *testing.T) {
		status, data := b.call(t, "GET", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV", "")
		wantError(t, status, data, http.StatusNotFound, CodeNotFound)
	})
}

func TestHandler_List(t *testing.T) {
	b := setup(t)
	var ids []string
	for i := range 3 {
		task := b.task(t, "POST", "/v1/tasks",
			fmt.Sprintf(`{"url":"http://127.0.0.1:1/%d","run_at":%q}`, i, later()), http.StatusCreated)
		ids = append(ids, task.ID.String())
	}
	cancelled := b.task(t, "POST", "/v1/tasks/"+ids[0]+"/cancel", "", http.StatusOK)

	list := func(t *testing.T, query string) []string {
		t.Helper()
		status, data := b.call(t, "GET", "/v1/tasks"+query, "")
		if status != http.StatusOK {
			t.Fatalf("GET /v1/tasks%s = %d %s", query, status, data)
		}
		var tasks []*queue.Task
		if err := json.Unmarshal(data, &tasks); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		var got []string
		for _, task := range tasks {
			got = append(got, task.ID.String())
		}
		return got
	}
	tests := []struct {
		name, query string
		want        []string
	}{
		{"All", "", []string{ids[2], ids[1], ids[0]}},
		{"Limit", "?limit=2", []string{ids[2], ids[1]}},
		{"Before", "?before=" + ids[2], []string{ids[1], ids[0]}},
		{"State", "?state=cancelled", []string{cancelled.ID.String()}},
		{"StateScheduled", "?state=scheduled", []string{ids[2], ids[1]}},
		{"Empty", "?state=failed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := list(t, tt.query)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
	t.Run("EmptyIsArray", func(t *testing.T) {
		_, data := b.call(t, "GET", "/v1/tasks?state=failed", "")
		if strings.TrimSpace(string(data)) != "[]" {
			t.Errorf("empty list = %s; want []", data)
		}
	})
	for _, query := range []string{"?state=done", "?limit=0", "?limit=x", "?before=nope"} {
		t.Run("Bad"+query, func(t *testing.T) {
			status, data := b.call(t, "GET", "/v1/tasks"+query, "")
			wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
		})
	}
}

func TestHandler_RetryCancel(t *testing.T) {
	b := setup(t)
	task := b.task(t, "POST", "/v1/tasks",
		fmt.Sprintf(`{"url":"http://127.0.0.1:1/","run_at":%q}`, later()), http.StatusCreated)
	path := "/v1/tasks/" + task.ID.String()

	status, data := b.call(t, "POST", path+"/retry", "")
	wantError(t, status, data, http.StatusConflict, CodeNotFinal)

	if got := b.task(t, "POST", path+"/cancel", "", http.StatusOK); got.State != queue.Cancelled {
		t.Errorf("after cancel: state %s; want cancelled", got.State)
	}
	status, data = b.call(t, "POST", path+"/cancel", "")
	wantError(t, status, data, http.StatusConflict, CodeFinal)

	if got := b.task(t, "POST", path+"/retry", "", http.StatusOK); got.State != queue.Pending {
		t.Errorf("after retry: state %s; want pending", got.State)
	}

	for _, op := range []string{"retry", "cancel"} {
		status, data := b.call(t, "POST", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/"+op, "")
		wantError(t, status, data, http.StatusNotFound, CodeNotFound)
		status, data = b.call(t, "POST", "/v1/tasks/x/"+op, "")
		wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
	}
}

func TestHandler_Wait(t *testing.T) {
	t.Run("Final", func(t *testing.T) {
		b := setup(t)
		recv := multiply(t)
		task := b.task(t, "POST", "/v1/tasks",
			fmt.Sprintf(`{"url":%q,"args":{"x":10,"y":10}}`, recv.URL), http.StatusCreated)
		got := b.task(t, "GET", "/v1/tasks/"+task.ID.String()+"/wait?timeout=30s", "", http.StatusOK)
		if got.State != queue.Succeeded || string(got.Result) != "100" {
			t.Errorf("wait = %s result %s; want succeeded 100", got.State, got.Result)
		}
	})

	t.Run("TimeoutReturnsCurrent", func(t *testing.T) {
		b := setup(t)
		recv := newBlocker(t)
		task := b.task(t, "POST", "/v1/tasks", fmt.Sprintf(`{"url":%q}`, recv.srv.URL), http.StatusCreated)
		recv.waitArrival(t)
		got := b.task(t, "GET", "/v1/tasks/"+task.ID.String()+"/wait?timeout=20ms", "", http.StatusOK)
		if got.State != queue.Active {
			t.Errorf("wait timed out with state %s; want active", got.State)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		b := setup(t)
		status, data := b.call(t, "GET", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/wait?timeout=1s", "")
		wantError(t, status, data, http.StatusNotFound, CodeNotFound)
		status, data = b.call(t, "GET", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/wait?timeout=-1s", "")
		wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
	})
}

func TestHandler_Attempts(t *testing.T) {
	b := setup(t)
	recv := multiply(t)
	task := b.task(t, "POST", "/v1/tasks",
		fmt.Sprintf(`{"url":%q,"args":{"x":"a"}}`, recv.URL), http.StatusCreated)
	b.task(t, "GET", "/v1/tasks/"+task.ID.String()+"/wait", "", http.StatusOK)

	status, data := b.call(t, "GET", "/v1/tasks/"+task.ID.String()+"/attempts", "")
	if status != http.StatusOK {
		t.Fatalf("attempts = %d %s", status, data)
	}
	var atts []queue.Attempt
	if err := json.Unmarshal(data, &atts); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if len(atts) != 1 || atts[0].N != 1 || atts[0].Outcome != "failed" || atts[0].Error == nil {
		t.Errorf("attempts = %s; want one failed attempt with its error", data)
	}

	status, data = b.call(t, "GET", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/attempts", "")
	wantError(t, status, data, http.StatusNotFound, CodeNotFound)
}

func TestHandler_StatsHealth(t *testing.T) {
	b := setup(t)
	b.task(t, "POST", "/v1/tasks", fmt.Sprintf(`{"url":"http://127.0.0.1:1/","run_at":%q}`, later()),
		http.StatusCreated)

	status, data := b.call(t, "GET", "/v1/stats", "")
	var s queue.Stats
	if err := json.Unmarshal(data, &s); err != nil || status != http.StatusOK {
		t.Fatalf("stats = %d %s (%v)", status, data, err)
	}
	if s.Total != 1 || s.Counts["scheduled"] != 1 || s.NextRun == nil {
		t.Errorf("stats = %s; want one scheduled task and a next run", data)
	}

	status, data = b.call(t, "GET", "/healthz", "")
	if status != http.StatusOK {
		t.Errorf("healthz = %d %s; want 200", status, data)
	}
	b.q.Close()
	status, data = b.call(t, "GET", "/healthz", "")
	wantError(t, status, data, http.StatusServiceUnavailable, CodeClosed)
}

func TestHandler_Celery(t *testing.T) {
	b := setup(t)
	recv := multiply(t)
	enqueue := func(body string) string {
		return b.task(t, "POST", "/v1/tasks", body, http.StatusCreated).ID.String()
	}
	wait := func(id string) {
		b.task(t, "GET", "/v1/tasks/"+id+"/wait", "", http.StatusOK)
	}
	ok := enqueue(fmt.Sprintf(`{"url":%q,"args":{"x":10,"y":10}}`, recv.URL))
	bad := enqueue(fmt.Sprintf(`{"url":%q,"args":{"x":"a"}}`, recv.URL))
	scheduled := enqueue(fmt.Sprintf(`{"url":%q,"run_at":%q}`, recv.URL, later()))
	revoked := enqueue(fmt.Sprintf(`{"url":%q,"run_at":%q}`, recv.URL, later()))
	b.task(t, "POST", "/v1/tasks/"+revoked+"/cancel", "", http.StatusOK)
	wait(ok)
	wait(bad)

	tests := []struct {
		name, id, status, result string
		executed                 bool
	}{
		{"Success", ok, "SUCCESS", `100`, true},
		{"Failure", bad, "FAILURE", `"x and y must be integers"`, true},
		{"Pending", scheduled, "PENDING", `null`, false},
		{"Revoked", revoked, "REVOKED", `null`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data := b.call(t, "GET", "/"+tt.id+"/status", "")
			want := fmt.Sprintf(`{"task":{"id":%q,"status":%q,"result":%s}}`, tt.id, tt.status, tt.result)
			if status != http.StatusOK || strings.TrimSpace(string(data)) != want {
				t.Errorf("status view = %d %s; want 200 %s", status, data, want)
			}
			status, data = b.call(t, "GET", "/"+tt.id+"/done", "")
			want = fmt.Sprintf(`{"task":{"id":%q,"executed":%t}}`, tt.id, tt.executed)
			if status != http.StatusOK || strings.TrimSpace(string(data)) != want {
				t.Errorf("done view = %d %s; want 200 %s", status, data, want)
			}
		})
	}
	t.Run("Unknown", func(t *testing.T) {
		status, data := b.call(t, "GET", "/01ARZ3NDEKTSV4RRFFQ69G5FAV/status", "")
		wantError(t, status, data, http.StatusNotFound, CodeNotFound)
		status, data = b.call(t, "GET", "/nope/done", "")
		wantError(t, status, data, http.StatusBadRequest, CodeInvalid)
	})
}

func TestCeleryState(t *testing.T) {
	tests := []struct {
		state queue.State
		want  string
	}{
		{queue.Scheduled, "PENDING"},
		{queue.Pending, "PENDING"},
		{queue.Active, "STARTED"},
		{queue.Retrying, "RETRY"},
		{queue.Succeeded, "SUCCESS"},
		{queue.Failed, "FAILURE"},
		{queue.Cancelled, "REVOKED"},
	}
	for _, tt := range tests {
		if got := CeleryState(tt.state); got != tt.want {
			t.Errorf("CeleryState(%s) = %s; want %s", tt.state, got, tt.want)
		}
	}
}

func TestHandler_NoRoute(t *testing.T) {
	b := setup(t)
	status, data := b.call(t, "GET", "/v2/nothing/here", "")
	wantError(t, status, data, http.StatusNotFound, "no_route")

	status, data = b.call(t, "DELETE", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV", "")
	wantError(t, status, data, http.StatusMethodNotAllowed, codeMethod)
}

func TestHandler_RefusesBrowserRequests(t *testing.T) {
	b := setup(t)
	task := `{"url":"http://127.0.0.1:9/x"}`
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		header http.Header
		want   int
	}{
		{"TextPlainPost", "POST", "/v1/tasks", task,
			http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}, http.StatusUnsupportedMediaType},
		{"FormPost", "POST", "/v1/tasks", task,
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, http.StatusUnsupportedMediaType},
		{"CrossSitePost", "POST", "/v1/tasks", task,
			http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"ForeignOriginPost", "POST", "/v1/tasks", task,
			http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"ReboundHostRead", "GET", "/v1/tasks", "",
			http.Header{"Host": {"attacker.example:7700"}}, http.StatusForbidden},
		{"LocalhostRead", "GET", "/v1/tasks", "",
			http.Header{"Host": {"localhost:7700"}}, http.StatusOK},
		{"IPv6Read", "GET", "/v1/tasks", "",
			http.Header{"Host": {"[::1]:7700"}}, http.StatusOK},
		{"UpperCaseLocalhost", "GET", "/v1/tasks", "",
			http.Header{"Host": {"LOCALHOST:7700"}}, http.StatusOK},
		{"HealthCheckByName", "GET", "/healthz", "",
			http.Header{"Host": {"lb.internal.example"}}, http.StatusOK},
		{"ReboundHostStats", "GET", "/v1/stats", "",
			http.Header{"Host": {"lb.internal.example"}}, http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, body := b.callWith(t, c.method, c.path, c.body, c.header); code != c.want {
				t.Errorf("%s %s = %d %s; want %d", c.method, c.path, code, body, c.want)
			}
		})
	}
	if got, _ := b.q.List(context.Background(), queue.ListOptions{}); len(got) != 0 {
		t.Errorf("refused requests stored %d tasks", len(got))
	}
}
