package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCLI_StatsThroughput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recv := multiplyServer(t)
	srv := startServe(t, dir)
	mustRun(t, dir, "add", "--wait", recv.URL+"/multiply", "x=2", "y=3")
	mustRun(t, dir, "add", "--wait", recv.URL+"/multiply", "x=2", "y=4")
	if r := hookq(t, dir, "add", "--wait", recv.URL+"/multiply", "x=two"); r.code != 1 {
		t.Fatalf("add --wait of a failing task = exit %d; want 1", r.code)
	}

	// The same figures from the server and, once it stopped, from the
	// store: they are tallied on disk.
	check := func(t *testing.T, how string) {
		var s map[string]any
		out := mustRun(t, dir, "stats", "--json")
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("stats --json %s: %v\n%s", how, err, out)
		}
		w, _ := s["last_minute"].(map[string]any)
		want := map[string]any{"seconds": 60.0, "succeeded": 2.0, "failed": 1.0, "attempts": 3.0,
			"failed_attempts": 1.0, "error_rate": 1.0 / 3, "finished_per_second": 3.0 / 60,
			"attempts_per_second": 3.0 / 60}
		for k, v := range want {
			if w[k] != v {
				t.Errorf("stats --json %s: last_minute.%s = %v; want %v\n%s", how, k, w[k], v, out)
			}
		}
		if _, ok := s["oldest_pending_age_seconds"].(float64); !ok {
			t.Errorf("stats --json %s: no oldest_pending_age_seconds\n%s", how, out)
		}
		human := mustRun(t, dir, "stats")
		for _, line := range []string{"last 60s:       2 succeeded, 1 failed, 0.05 tasks/s",
			"attempts:       3, 0.05/s, 33.3% failed"} {
			if !strings.Contains(human, line) {
				t.Errorf("stats %s lacks %q:\n%s", how, line, human)
			}
		}
	}
	check(t, "with a server")
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	check(t, "without a server")
}
