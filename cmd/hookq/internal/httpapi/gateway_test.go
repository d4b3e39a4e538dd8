package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hookq/hookq/queue"
)

// gateway serves b's queue with the given routes and metrics.
func gateway(t *testing.T, b *bundle, routes map[string]Route) *httptest.Server {
	t.Helper()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hookq_up 1\n")
	})
	srv := httptest.NewServer(NewHandler(b.q, nil, WithRoutes(routes), WithMetrics(metrics)))
	t.Cleanup(srv.Close)
	return srv
}

// gatewayCall sends one request with the given content type and headers.
func gatewayCall(t *testing.T, method, url, ctype, body string,
	header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

func TestGateway_Apply(t *testing.T) {
	b := setup(t)
	recv := multiply(t)
	srv := gateway(t, b, map[string]Route{
		"multiply":       {URL: recv.URL + "/multiply", Method: "GET"},
		"tasks.multiply": {URL: recv.URL + "/multiply", Method: "POST"},
		"status":         {URL: recv.URL + "/multiply", Method: "GET"},
	})

	// apply enqueues and answers as Celery's gateway did; the task runs.
	apply := func(t *testing.T, method, path, ctype, body string) *queue.Task {
		t.Helper()
		status, _, data := gatewayCall(t, method, srv.URL+path, ctype, body, nil)
		var reply map[string]string
		if err := json.Unmarshal([]byte(data), &reply); err != nil || status != http.StatusOK ||
			reply["ok"] != "true" || len(reply) != 2 {
			t.Fatalf("%s %s = %d %s (%v); want 200 with ok and task_id", method, path, status, data, err)
		}
		return b.task(t, "GET", "/v1/tasks/"+reply["task_id"]+"/wait", "", http.StatusOK)
	}
	for _, tc := range []struct {
		name, method, path, ctype, body string
		wantMethod, wantResult          string
	}{
		{"GetQuery", "GET", "/apply/multiply?x=6&y=7", "", "", "GET", "42"},
		{"PostForm", "POST", "/apply/tasks.multiply", "application/x-www-form-urlencoded", "x=5&y=5",
			"POST", "25"},
		{"PostJSON", "POST", "/apply/tasks.multiply", "application/json", `{"x": 3, "y": 4}`, "POST", "12"},
		{"BodyOverridesQuery", "POST", "/apply/tasks.multiply?x=100&y=2", "application/x-www-form-urlencoded",
			"x=3", "POST", "6"},
		{"PostQueryOnly", "POST", "/apply/multiply?x=2&y=2", "", "", "GET", "4"},
		{"NamedLikeACeleryView", "GET", "/apply/status?x=1&y=9", "", "", "GET", "9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := apply(t, tc.method, tc.path, tc.ctype, tc.body)
			if task.State != queue.Succeeded || string(task.Result) != tc.wantResult ||
				task.Method != tc.wantMethod {
				t.Errorf("task = %s %s %s; want %s succeeded with %s", task.Method, task.State,
					task.Result, tc.wantMethod, tc.wantResult)
			}
		})
	}

	t.Run("RepeatedKeyIsAList", func(t *testing.T) {
		task := apply(t, "GET", "/apply/multiply?x=1&x=2&y=3", "", "")
		var args map[string]any
		json.Unmarshal(task.Args, &args)
		if fmt.Sprint(args["x"]) != "[1 2]" {
			t.Errorf("args = %s; want x as a list", task.Args)
		}
	})

	t.Run("CeleryViewsStillServed", func(t *testing.T) {
		task := apply(t, "GET", "/apply/multiply?x=2&y=5", "", "")
		status, _, data := gatewayCall(t, "GET", srv.URL+"/"+task.ID.String()+"/status", "", "", nil)
		if status != http.StatusOK || !strings.Contains(data, `"SUCCESS"`) {
			t.Errorf("status view = %d %s", status, data)
		}
	})

	before := b.total(t)
	big := "x=" + strings.Repeat("9", MaxBodyBytes)
	for _, tc := range []struct {
		name, method, path, ctype, body string
		header                          http.Header
		want                            int
		code                            string
	}{
		{"UnknownName", "GET", "/apply/divide?x=1", "", "", nil, 404, CodeNotFound},
		{"Head", "HEAD", "/apply/multiply?x=1", "", "", nil, 405, ""},
		{"Put", "PUT", "/apply/multiply", "", "", nil, 405, codeMethod},
		{"CrossSiteGet", "GET", "/apply/multiply?x=1&y=1", "", "",
			http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403, CodeForeign},
		{"CrossSitePost", "POST", "/apply/multiply", "application/x-www-form-urlencoded", "x=1",
			http.Header{"Origin": {"http://evil.example"}}, 403, CodeForeign},
		{"MalformedQuery", "GET", "/apply/multiply?x=%ZZ&y=1", "", "", nil, 400, CodeInvalid},
		{"TextBody", "POST", "/apply/multiply", "text/plain", "x=1", nil, 415, CodeInvalid},
		{"Multipart", "POST", "/apply/multiply", "multipart/form-data; boundary=x", "--x--", nil, 415, CodeInvalid},
		{"JSONArray", "POST", "/apply/multiply", "application/json", `[1, 2]`, nil, 400, CodeInvalid},
		{"JSONTrailingData", "POST", "/apply/multiply", "application/json", `{"x": 1} {}`, nil, 400, CodeInvalid},
		{"NestedArgument", "POST", "/apply/multiply", "application/json", `{"x": {"y": 1}}`, nil, 400, CodeInvalid},
		{"FormTooLarge", "POST", "/apply/multiply", "application/x-www-form-urlencoded", big, nil,
			413, CodeTooLarge},
		{"JSONTooLarge", "POST", "/apply/multiply", "application/json",
			`{"x": "` + strings.Repeat("9", MaxBodyBytes) + `"}`, nil, 413, CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, header, data := gatewayCall(t, tc.method, srv.URL+tc.path, tc.ctype, tc.body, tc.header)
			if status != tc.want {
				t.Fatalf("%s %s = %d %s; want %d", tc.method, tc.path, status, data, tc.want)
			}
			if tc.code != "" {
				wantError(t, status, []byte(data), tc.want, tc.code)
			}
			if tc.want == 405 && header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
	if n := b.total(t); n != before {
		t.Errorf("refused requests stored %d tasks", n-before)
	}
}

func TestHandler_BodyLimitOnEveryRoute(t *testing.T) {
	// A route that reads its body gets at most MaxBodyBytes of it, even
	// if it sets no limit of its own.
	b := setup(t)
	read := make(chan error, 1)
	srv := httptest.NewServer(NewHandler(b.q, nil, func(h *handler) {
		h.extra.HandleFunc("POST /probe", func(w http.ResponseWriter, r *http.Request) {
			_, err := io.Copy(io.Discard, r.Body)
			read <- err
		})
	}))
	defer srv.Close()
	gatewayCall(t, "POST", srv.URL+"/probe", "application/octet-stream",
		strings.Repeat("x", MaxBodyBytes+1), nil)
	var tooLarge *http.MaxBytesError
	if err := <-read; err == nil || !errors.As(err, &tooLarge) {
		t.Errorf("reading an oversized body = %v; want a MaxBytesError", err)
	}
}

func TestCheckRoute(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route Route
		want  string // the method after the check, or "" for an error
	}{
		{"multiply", Route{URL: "http://127.0.0.1:8000/multiply"}, "GET"},
		{"tasks.multiply-2_b", Route{URL: "https://h/m", Method: "post"}, "POST"},
		{"", Route{URL: "http://h/"}, ""},
		{".hidden", Route{URL: "http://h/"}, ""},
		{"a/b", Route{URL: "http://h/"}, ""},
		{"sp ace", Route{URL: "http://h/"}, ""},
		{strings.Repeat("n", 129), Route{URL: "http://h/"}, ""},
		{"m", Route{URL: "ftp://h/"}, ""},
		{"m", Route{URL: "/relative"}, ""},
		{"m", Route{URL: "http://h/", Method: "BREW"}, ""},
	} {
		r, err := CheckRoute(tc.name, tc.route)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("CheckRoute(%q, %+v) = ok; want an error", tc.name, tc.route)
		case tc.want != "" && (err != nil || r.Method != tc.want):
			t.Errorf("CheckRoute(%q, %+v) = %+v, %v; want method %s", tc.name, tc.route, r, err, tc.want)
		}
	}
}

func TestCheckRoute_HidesPassword(t *testing.T) {
	for _, raw := range []string{"ftp://user:s3cret@h/", "http://user:s3cret@h/%zz"} {
		_, err := CheckRoute("m", Route{URL: raw})
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx@h") {
			t.Errorf("CheckRoute of %q = %v; want an error showing the userinfo as xxxxx", raw, err)
		}
	}
}
