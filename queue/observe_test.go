package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// events collects what the observers of a queue receive.
type events struct {
	mu       sync.Mutex
	attempts []AttemptEvent
	enqueues []EnqueueEvent
}

func (e *events) options(o *Options) *Options {
	o.OnAttempt = func(ev AttemptEvent) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.attempts = append(e.attempts, ev)
	}
	o.OnEnqueue = func(ev EnqueueEvent) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.enqueues = append(e.enqueues, ev)
	}
	return o
}

func (e *events) snapshot() ([]AttemptEvent, []EnqueueEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]AttemptEvent(nil), e.attempts...), append([]EnqueueEvent(nil), e.enqueues...)
}

func TestQueue_Observer(t *testing.T) {
	var calls atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		multiply(w, r)
	})
	var got events
	h := newHarness(t, got.options(&Options{BackoffBase: time.Millisecond, BackoffCap: time.Millisecond}))
	url := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/multiply"
	tasks, err := h.q.EnqueueMany(context.Background(), []Spec{
		{URL: url, Args: map[string]any{"x": 6, "y": 7}, Key: "k"},
		{URL: url, Args: map[string]any{"x": 6, "y": 7}, Key: "k"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.wait(t, tasks[0].ID)
	h.nextAttempt(t)
	h.nextAttempt(t) // the hook runs after the observer: both events are in

	attempts, enqueues := got.snapshot()
	if len(enqueues) != 1 || enqueues[0] != (EnqueueEvent{Tasks: 1, Existing: 1}) {
		t.Errorf("enqueue events = %+v; want one with 1 task and 1 existing", enqueues)
	}
	if len(attempts) != 2 {
		t.Fatalf("attempt events = %+v; want 2", attempts)
	}
	first, second := attempts[0], attempts[1]
	host := strings.TrimPrefix(srv.URL, "http://")
	for i, e := range attempts {
		if e.TaskID != tasks[0].ID || e.Method != "GET" || e.Host != host ||
			strings.Contains(e.URL, "hunter2") || !strings.Contains(e.URL, "xxxxx") ||
			e.Attempt != i+1 || e.StartedAt.IsZero() || e.Duration <= 0 {
			t.Errorf("event %d = %+v; want task, GET, host %s, redacted URL, attempt %d", i, e, host, i+1)
		}
	}
	if first.Outcome != OutcomeRetrying || first.Final || first.StatusCode != 503 ||
		first.Error == nil || first.Error.Kind != "http" || first.NextAttemptAt == nil || first.Result != nil {
		t.Errorf("first event = %+v; want retrying after a 503", first)
	}
	if second.Outcome != OutcomeSucceeded || !second.Final || second.StatusCode != 200 ||
		second.Error != nil || string(second.Result) != "42" || second.NextAttemptAt != nil {
		t.Errorf("second event = %+v; want succeeded with 42", second)
	}
}

func TestQueue_ObserverDoesNotStallCommits(t *testing.T) {
	srv := receiver(t, multiply)
	release := make(chan struct{})
	var delivered atomic.Int32
	var once sync.Once
	blocked := make(chan struct{})
	q, err := Open(t.TempDir()+"/hookq.db", &Options{
		OnAttempt: func(AttemptEvent) {
			once.Do(func() { close(blocked) })
			<-release // an observer stuck until the test lets it go
			delivered.Add(1)
		},
		NoSync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first outcome blocks the observer; tasks go on finishing.
	const n = 20
	first, err := q.Enqueue(ctx, Spec{URL: srv.URL, Args: map[string]any{"x": 1, "y": 1}})
	if err != nil {
		t.Fatal(err)
	}
	<-blocked
	for i := range n - 1 {
		task, err := q.Enqueue(ctx, Spec{URL: srv.URL, Args: map[string]any{"x": i, "y": 2}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := q.Wait(ctx, task.ID); err != nil || got.State != Succeeded {
			t.Fatalf("Wait with a stuck observer = %v, %v; want succeeded", got, err)
		}
	}
	if got, err := q.Get(ctx, first.ID); err != nil || got.State != Succeeded {
		t.Fatalf("first task = %v, %v", got, err)
	}

	// Close delivers every event that was waiting.
	close(release)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if d := delivered.Load(); d != n {
		t.Errorf("events delivered by Close = %d; want %d", d, n)
	}
	if d := q.DroppedEvents(); d != 0 {
		t.Errorf("dropped events = %d; want 0", d)
	}
}

func TestReporter_DropsBeyondBound(t *testing.T) {
	release := make(chan struct{})
	taken := make(chan struct{})
	var delivered atomic.Int32
	r := newReporter(func(ev *event) {
		if delivered.Add(1) == 1 {
			close(taken)
			<-release
		}
	})
	r.push(&event{})
	<-taken // the first event is being delivered; the rest wait
	const extra = 5
	for range maxPendingEvents + extra {
		r.push(&event{})
	}
	if d := r.dropped.Load(); d != extra {
		t.Errorf("dropped = %d; want %d", d, extra)
	}
	close(release)
	r.close()
	if d := delivered.Load(); d != maxPendingEvents+1 {
		t.Errorf("delivered = %d; want %d", d, maxPendingEvents+1)
	}
	r.push(&event{}) // after close: dropped, not delivered
	if d := r.dropped.Load(); d != extra+1 {
		t.Errorf("dropped after close = %d; want %d", d, extra+1)
	}
	r.close() // twice is fine
}

func TestQueue_LogsOneLinePerTask(t *testing.T) {
	var calls atomic.Int32
	long := strings.Repeat("é", 80) // 160 bytes: cut at a rune boundary
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "retval": long})
	})
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			var buf syncBuffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
			h := newHarness(t, &Options{Logger: log, BackoffBase: time.Millisecond,
				BackoffCap: time.Millisecond})
			calls.Store(0)
			url := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1)
			task := h.enqueue(t, Spec{URL: url, Method: "POST"})
			h.wait(t, task.ID)
			h.nextAttempt(t)
			h.nextAttempt(t)
			h.q.Close()

			var finished, attempts []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				switch m["msg"] {
				case "task finished":
					finished = append(finished, m)
				case "task attempt":
					attempts = append(attempts, m)
				}
			}
			if strings.Contains(buf.String(), "hunter2") {
				t.Errorf("log shows the URL's password:\n%s", buf.String())
			}
			if len(finished) != 1 {
				t.Fatalf("task finished lines = %d; want 1:\n%s", len(finished), buf.String())
			}
			f := finished[0]
			retval, _ := f["retval"].(string)
			if f["level"] != "INFO" || f["task_id"] != task.ID.String() || f["method"] != "POST" ||
				f["outcome"] != "succeeded" || f["attempts"] != 2.0 || f["status_code"] != 200.0 ||
				f["duration"] == nil || !strings.Contains(f["url"].(string), "xxxxx") ||
				len(retval) > maxLogResult+len("…") || !strings.HasSuffix(retval, "…") {
				t.Errorf("task finished line = %v", f)
			}
			wantAttempts := 0
			if level == slog.LevelDebug {
				wantAttempts = 1
			}
			if len(attempts) != wantAttempts {
				t.Fatalf("task attempt lines = %v; want %d", attempts, wantAttempts)
			}
			if wantAttempts == 1 && (attempts[0]["outcome"] != "retrying" ||
				attempts[0]["attempt"] != 1.0 || attempts[0]["status_code"] != 502.0 ||
				attempts[0]["delay"] == nil) {
				t.Errorf("task attempt line = %v", attempts[0])
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789…"},
		{"ééé", 3, "é…"}, // byte 3 is inside the second é
		{"", 0, ""},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q; want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestQueue_StatsWindow(t *testing.T) {
	var calls atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			http.Error(w, "gone", http.StatusGone)
		case "/flaky":
			if calls.Add(1) == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			multiply(w, r)
		default:
			multiply(w, r)
		}
	})
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	h := newHarness(t, &Options{Clock: clock, BackoffBase: time.Second, BackoffCap: time.Second})
	ctx := context.Background()

	// Two tasks succeed, one fails at once, one succeeds on its retry.
	ok1 := h.enqueue(t, Spec{URL: srv.URL + "/ok", Args: map[string]any{"x": 1, "y": 1}})
	ok2 := h.enqueue(t, Spec{URL: srv.URL + "/ok", Args: map[string]any{"x": 1, "y": 2}})
	gone := h.enqueue(t, Spec{URL: srv.URL + "/gone"})
	flaky := h.enqueue(t, Spec{URL: srv.URL + "/flaky", Args: map[string]any{"x": 2, "y": 2}})
	for range 4 {
		h.nextAttempt(t)
	}
	retrying, err := h.q.Get(ctx, flaky.ID)
	if err != nil || retrying.State != Retrying {
		t.Fatalf("flaky task = %v, %v; want retrying", retrying, err)
	}
	clock.Set(*retrying.NextAttemptAt)
	for _, id := range []ID{ok1.ID, ok2.ID, gone.ID, flaky.ID} {
		h.wait(t, id)
	}

	want := Window{Seconds: 60, Succeeded: 3, Failed: 1, FinishedPerSecond: 4.0 / 60,
		Attempts: 5, FailedAttempts: 2, AttemptsPerSecond: 5.0 / 60, ErrorRate: 0.4}
	s, err := h.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.LastMinute != want {
		t.Errorf("last minute = %+v; want %+v", s.LastMinute, want)
	}
	checkStore(t, h.q)

	// The store alone tells the same, without workers.
	h.q.Close()
	ro, err := Open(h.path, &Options{ReadOnly: true, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if s, err := ro.Stats(ctx); err != nil || s.LastMinute != want {
		t.Errorf("read-only last minute = %+v, %v; want %+v", s.LastMinute, err, want)
	}

	// A minute later the window is empty.
	clock.Advance(time.Minute + time.Second)
	if s, err := ro.Stats(ctx); err != nil || s.LastMinute != (Window{Seconds: 60}) {
		t.Errorf("last minute a minute later = %+v, %v; want empty", s.LastMinute, err)
	}
}

func TestQueue_StatsOldestPendingAge(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{DisableWorkers: true, Clock: clock})
	ctx := context.Background()
	if s, err := h.q.Stats(ctx); err != nil || s.OldestPendingAge != 0 || s.OldestPending != nil {
		t.Errorf("empty queue: age %v oldest %v, %v; want none", s.OldestPendingAge, s.OldestPending, err)
	}
	first := h.enqueue(t, Spec{URL: "http://127.0.0.1:9/a"})
	clock.Advance(10 * time.Second)
	later := clock.Now().Add(time.Hour)
	h.enqueue(t, Spec{URL: "http://127.0.0.1:9/b"})
	h.enqueue(t, Spec{URL: "http://127.0.0.1:9/c", RunAt: &later})
	clock.Advance(20 * time.Second)
	s, err := h.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.OldestPendingAge != 30 || s.OldestPending == nil || !s.OldestPending.Equal(first.CreatedAt) {
		t.Errorf("age %v, oldest %v; want 30s and %v", s.OldestPendingAge, s.OldestPending, first.CreatedAt)
	}
}

func TestQueue_ObserverCancelledInFlight(t *testing.T) {
	for _, retry := range []bool{false, true} {
		t.Run(map[bool]string{false: "Cancelled", true: "CancelledThenRetried"}[retry], func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			var calls atomic.Int32
			srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					arrived <- struct{}{}
					<-r.Context().Done() // the first attempt hangs until aborted
					return
				}
				multiply(w, r)
			})
			var got events
			h := newHarness(t, got.options(&Options{}))
			task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 2, "y": 2}})
			<-arrived
			if _, err := h.q.Cancel(context.Background(), task.ID); err != nil {
				t.Fatal(err)
			}
			if retry {
				if _, err := h.q.Retry(context.Background(), task.ID); err != nil {
					t.Fatal(err)
				}
			}
			h.nextAttempt(t)
			attempts, _ := got.snapshot()
			if len(attempts) < 1 || attempts[0].Outcome != OutcomeCancelled || attempts[0].Final == retry {
				t.Fatalf("first event = %+v; want cancelled, final %v", attempts, !retry)
			}
			if retry {
				if done := h.wait(t, task.ID); done.State != Succeeded {
					t.Errorf("retried task = %s; want succeeded", done.State)
				}
			}
		})
	}
}
