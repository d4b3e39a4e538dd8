package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// tcpGet sends a GET to the server's TCP listener, with the bearer token if
// tok is set, and returns the status, the headers and the body.
func (s *server) tcpGet(t *testing.T, path, tok string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+s.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

// writeTestFile writes a file of the test's with the given mode.
func writeTestFile(t *testing.T, name, data string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServe_Metrics(t *testing.T) {
	t.Parallel()
	recv := multiplyServer(t)
	dir := t.TempDir()
	srv := startServe(t, dir)
	mustRun(t, dir, "add", "--wait", recv.URL+"/multiply", "x=6", "y=7")
	addTask(t, dir, recv.URL+"/multiply", "--in", "1h")

	// The finished task's events are delivered just after wait returns:
	// scrape until they are in.
	var families map[string]float64
	deadline := time.Now().Add(patience)
	for {
		status, header, body := srv.tcpGet(t, "/metrics", "")
		if status != 200 || !strings.HasPrefix(header.Get("Content-Type"), "text/plain") {
			t.Fatalf("GET /metrics = %d %q %s", status, header.Get("Content-Type"), body)
		}
		families = parseMetrics(t, body)
		if families[`hookq_tasks_finished_total{outcome="succeeded"}`] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for name, want := range map[string]float64{
		`hookq_tasks_enqueued_total`:                      2,
		`hookq_tasks_finished_total{outcome="succeeded"}`: 1,
		`hookq_tasks_finished_total{outcome="failed"}`:    0,
		`hookq_attempts_total{class="2xx"}`:               1,
		`hookq_attempt_duration_seconds_count`:            1,
		`hookq_tasks{state="scheduled"}`:                  1,
		`hookq_tasks{state="succeeded"}`:                  1,
		`hookq_oldest_pending_age_seconds`:                0,
		`hookq_events_dropped_total`:                      0,
		`hookq_build_info{version="` + testVersion + `"}`: 1,
	} {
		if got, ok := families[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v); want %v", name, got, ok, want)
		}
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is missing")
	}
}

// parseMetrics parses exposition text into values by name{labels}.
func parseMetrics(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, text)
	}
	out := make(map[string]float64)
	for name, f := range families {
		for _, m := range f.Metric {
			key := name
			if len(m.Label) > 0 {
				var labels []string
				for _, l := range m.Label {
					labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
				}
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}
