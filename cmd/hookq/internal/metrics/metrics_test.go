package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hookq/hookq/queue"
)

// scrapeText fetches the exposition text of h and parses it.
func scrapeText(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape = %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition text: %v", err)
	}
	return families
}

// value returns the value of the sample of family name whose labels
// include want, failing the test if there is none.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, want)
	return 0
}

func TestMetrics_Scrape(t *testing.T) {
	var flaky atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, `{"status":"success","retval":1}`)
		case "/gone":
			http.Error(w, "gone", http.StatusGone)
		case "/flaky":
			if flaky.Add(1) == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, `{"status":"success","retval":2}`)
		}
	}))
	defer recv.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close() // nothing listens there now: connection refused

	m := New("v1.2.3", nil)
	q, err := queue.Open(filepath.Join(t.TempDir(), "hookq.db"), &queue.Options{
		Workers:     2,
		BackoffBase: time.Millisecond,
		BackoffCap:  time.Millisecond,
		NoSync:      true,
		OnEnqueue:   m.OnEnqueue,
		OnAttempt:   m.OnAttempt,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m.Watch(q)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tasks, err := q.EnqueueMany(ctx, []queue.Spec{
		{URL: recv.URL + "/ok"},
		{URL: recv.URL + "/ok", Key: "once"},
		{URL: recv.URL + "/ok", Key: "once"}, // matched: not a new task
		{URL: recv.URL + "/gone"},
		{URL: recv.URL + "/flaky"},
		{URL: closedURL, MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if _, err := q.Wait(ctx, task.ID); err != nil {
			t.Fatal(err)
		}
	}
	later := time.Now().Add(time.Hour)
	if _, err := q.Enqueue(ctx, queue.Spec{URL: recv.URL + "/ok", RunAt: &later}); err != nil {
		t.Fatal(err)
	}

	// The observer's events may come after Wait returns: Close delivers
	// them all. The scrape's stats then fail, which it survives.
	q.Close()

	families := scrapeText(t, m.Handler())
	counts := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{NameEnqueued, nil, 6},
		{NameFinished, map[string]string{"outcome": "succeeded"}, 3},
		{NameFinished, map[string]string{"outcome": "failed"}, 2},
		{NameAttempts, map[string]string{"class": "2xx"}, 3},
		{NameAttempts, map[string]string{"class": "4xx"}, 1},
		{NameAttempts, map[string]string{"class": "5xx"}, 1},
		{NameAttempts, map[string]string{"class": "transport"}, 1},
		{NameAttempts, map[string]string{"class": "timeout"}, 0},
		{NameDuration, nil, 6},
		{NameBuildInfo, map[string]string{"version": "v1.2.3"}, 1},
		{NameDropped, nil, 0},
	}
	for _, c := range counts {
		if got := value(t, families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if families[name] == nil {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
}

func TestMetrics_ScrapeReadsStats(t *testing.T) {
	m := New("test", nil)
	q, err := queue.Open(filepath.Join(t.TempDir(), "hookq.db"), &queue.Options{
		DisableWorkers: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m.Watch(q)
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	for _, spec := range []queue.Spec{
		{URL: "http://127.0.0.1:9/a"},
		{URL: "http://127.0.0.1:9/b"},
		{URL: "http://127.0.0.1:9/c", RunAt: &later},
	} {
		if _, err := q.Enqueue(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	families := scrapeText(t, m.Handler())
	for state, want := range map[string]float64{"pending": 2, "scheduled": 1, "active": 0,
		"retrying": 0, "succeeded": 0, "failed": 0, "cancelled": 0} {
		if got := value(t, families, NameTasks, map[string]string{"state": state}); got != want {
			t.Errorf("%s{state=%q} = %v; want %v", NameTasks, state, got, want)
		}
	}
	if age := value(t, families, NameOldestPending, nil); age < 0 {
		t.Errorf("%s = %v; want at least 0", NameOldestPending, age)
	}
}

// failing is a Source whose stats cannot be read.
type failing struct{}

func (failing) Stats(context.Context) (*queue.Stats, error) { return nil, errors.New("store closed") }
func (failing) DroppedEvents() uint64                       { return 7 }

func TestMetrics_ScrapeSurvivesStatsError(t *testing.T) {
	m := New("test", nil)
	m.Watch(failing{})
	families := scrapeText(t, m.Handler())
	if families[NameTasks] != nil {
		t.Errorf("%s served although the stats failed", NameTasks)
	}
	if got := value(t, families, NameDropped, nil); got != 7 {
		t.Errorf("%s = %v; want 7", NameDropped, got)
	}
	if families["go_goroutines"] == nil {
		t.Error("a stats error took the other metrics with it")
	}
}

func TestClass(t *testing.T) {
	for _, tc := range []struct {
		e    queue.AttemptEvent
		want string
	}{
		{queue.AttemptEvent{StatusCode: 200}, "2xx"},
		{queue.AttemptEvent{StatusCode: 301}, "3xx"},
		{queue.AttemptEvent{StatusCode: 429, Error: &queue.Error{Kind: "http"}}, "4xx"},
		{queue.AttemptEvent{StatusCode: 200, Error: &queue.Error{Kind: "too_large"}}, "2xx"},
		{queue.AttemptEvent{Error: &queue.Error{Kind: "timeout"}}, "timeout"},
		{queue.AttemptEvent{Error: &queue.Error{Kind: "refused"}}, "refused"},
		{queue.AttemptEvent{Error: &queue.Error{Kind: "cancelled"}}, "cancelled"},
		{queue.AttemptEvent{Error: &queue.Error{Kind: "surprise"}}, "other"},
		{queue.AttemptEvent{StatusCode: 999}, "other"},
	} {
		if got := Class(tc.e); got != tc.want {
			t.Errorf("Class(%+v) = %q; want %q", tc.e, got, tc.want)
		}
	}
}
