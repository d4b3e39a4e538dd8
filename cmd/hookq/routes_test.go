package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestServe_Gateway(t *testing.T) {
	t.Parallel()
	recv := multiplyServer(t)
	routes := writeTestFile(t, "routes.json",
		`{"multiply": {"url": "`+recv.URL+`/multiply", "method": "GET"}}`, 0o600)
	dir := t.TempDir()
	srv := startServe(t, dir, "--routes", routes, "--route", "tasks.multiply=post:"+recv.URL+"/multiply",
		"--route", "plain="+recv.URL+"/multiply")
	srv.log.waitFor(t, "celery gateway", srv.done)

	for path, want := range map[string]string{
		"/apply/multiply?x=6&y=7":       "42\n",
		"/apply/tasks.multiply?x=3&y=3": "9\n",
		"/apply/plain?x=2&y=2":          "4\n",
	} {
		status, _, body := srv.tcpGet(t, path, "")
		var reply struct {
			OK     string `json:"ok"`
			TaskID string `json:"task_id"`
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil || status != 200 || reply.OK != "true" {
			t.Fatalf("GET %s = %d %s; want 200 with ok true", path, status, body)
		}
		if out := mustRun(t, dir, "wait", reply.TaskID); out != want {
			t.Errorf("wait for the task of %s printed %q; want %q", path, out, want)
		}
	}
	if status, _, body := srv.tcpGet(t, "/apply/divide?x=1", ""); status != http.StatusNotFound {
		t.Errorf("GET /apply/divide = %d %s; want 404", status, body)
	}
	var tasks []struct{ Method string }
	if err := json.Unmarshal([]byte(mustRun(t, dir, "ls", "--json")), &tasks); err != nil {
		t.Fatal(err)
	}
	methods := map[string]int{}
	for _, task := range tasks {
		methods[task.Method]++
	}
	if len(tasks) != 3 || methods["GET"] != 2 || methods["POST"] != 1 {
		t.Errorf("tasks' methods = %v; want 2 GET (multiply, plain) and 1 POST (tasks.multiply)", methods)
	}
}

func TestServe_GatewayRoutesRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoName", []string{"--route", "=GET:http://h/"}, "name=METHOD:URL"},
		{"BadName", []string{"--route", "a/b=GET:http://h/"}, "route name"},
		{"BadMethod", []string{"--route", "m=BREW:http://h/"}, "absolute http"},
		{"RelativeURL", []string{"--route", "m=GET:/m"}, "absolute http"},
		{"Twice", []string{"--route", "m=http://h/a", "--route", "m=http://h/b"}, "defined twice"},
		{"MissingFile", []string{"--routes", "/nonexistent/routes.json"}, "--routes"},
		{"NotAnObject", []string{"--routes", writeTestFile(t, "r.json", `["m"]`, 0o600)}, "JSON object"},
		{"UnknownField", []string{"--routes",
			writeTestFile(t, "r.json", `{"m": {"url": "http://h/", "verb": "GET"}}`, 0o600)}, "unknown field"},
		{"TwiceInFile", []string{"--routes", writeTestFile(t, "r.json",
			`{"m": {"url": "http://h/a"}, "m": {"url": "http://h/b"}}`, 0o600)}, "defined twice"},
		{"Head", []string{"--route", "m=HEAD:http://h/"}, "HEAD"},
		{"PortOutOfRange", []string{"--route", "m=GET:http://h:99999/"}, "port"},
		{"PasswordNotShown", []string{"--route", "m=GET:http://u:SECRETPW@[::1/"}, "absolute http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := hookq(t, t.TempDir(), append([]string{"serve"}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "SECRETPW") {
				t.Errorf("serve %v = exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
			}
		})
	}
}
