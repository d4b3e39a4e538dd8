package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookq/hookq/dispatch"
	"github.com/hookq/hookq/storage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness is a queue over a fresh store with a hook that reports every
// stored attempt.
type harness struct {
	q        *Queue
	path     string
	attempts chan ID  // receives a task's ID after each stored attempt
	sweeps   chan int // receives the count of each background sweep
}

func newHarness(t *testing.T, opts *Options) *harness {
	t.Helper()
	h := &harness{path: filepath.Join(t.TempDir(), "hookq.db"),
		attempts: make(chan ID, 1024), sweeps: make(chan int, 1024)}
	h.open(t, opts)
	return h
}

func (h *harness) open(t *testing.T, opts *Options) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	q, err := open(h.path, opts, hooks{
		afterAttempt: func(id ID, _ *Attempt) { h.attempts <- id },
		afterSweep:   func(n int) { h.sweeps <- n },
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	h.q = q
	t.Cleanup(func() { q.Close() })
}

// nextAttempt waits for the next stored attempt.
func (h *harness) nextAttempt(t *testing.T) ID {
	t.Helper()
	select {
	case id := <-h.attempts:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt stored within 10s")
		return ID{}
	}
}

func (h *harness) wait(t *testing.T, id ID) *Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	task, err := h.q.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	return task
}

func (h *harness) enqueue(t *testing.T, spec Spec) *Task {
	t.Helper()
	task, err := h.q.Enqueue(context.Background(), spec)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return task
}

// multiply answers the seed's callback: x*y, or a failure for bad input.
func multiply(w http.ResponseWriter, r *http.Request) {
	x, errx := strconv.Atoi(r.FormValue("x"))
	y, erry := strconv.Atoi(r.FormValue("y"))
	if errx != nil || erry != nil {
		fmt.Fprint(w, `{"status":"failure","reason":"x and y must be integers"}`)
		return
	}
	fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
}

func receiver(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestQueue_Lifecycle(t *testing.T) {
	t.Run("Succeeded", func(t *testing.T) {
		srv := receiver(t, multiply)
		h := newHarness(t, nil)
		task := h.enqueue(t, Spec{URL: srv.URL + "/multiply", Args: map[string]any{"x": 10, "y": 10}})
		got := h.wait(t, task.ID)
		if got.State != Succeeded || string(got.Result) != "100" || got.Attempts != 1 {
			t.Errorf("task = %s result %s attempts %d; want succeeded 100 1",
				got.State, got.Result, got.Attempts)
		}
		if got.FinishedAt == nil || got.NextAttemptAt != nil || got.Error != nil {
			t.Errorf("final task fields: finished %v next %v error %v", got.FinishedAt, got.NextAttemptAt, got.Error)
		}
		atts, err := h.q.Attempts(context.Background(), task.ID)
		if err != nil || len(atts) != 1 || atts[0].Outcome != "succeeded" || atts[0].StatusCode != 200 {
			t.Errorf("attempts = %+v, %v", atts, err)
		}
	})

	t.Run("PostForm", func(t *testing.T) {
		srv := receiver(t, multiply)
		h := newHarness(t, nil)
		task := h.enqueue(t, Spec{URL: srv.URL, Method: "post", Args: map[string]any{"x": 6, "y": "7"}})
		if got := h.wait(t, task.ID); string(got.Result) != "42" {
			t.Errorf("result = %s; want 42", got.Result)
		}
	})

	t.Run("FailedRemote", func(t *testing.T) {
		srv := receiver(t, multiply)
		h := newHarness(t, nil)
		task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": "ten"}})
		got := h.wait(t, task.ID)
		if got.State != Failed || got.Error == nil || got.Error.Kind != "remote" || got.Attempts != 1 {
			t.Errorf("task = %s %+v attempts %d; want failed remote after 1", got.State, got.Error, got.Attempts)
		}
	})

	t.Run("RetriedThenSucceeded", func(t *testing.T) {
		var calls atomic.Int32
		srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			multiply(w, r)
		})
		h := newHarness(t, &Options{BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond})
		task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 2, "y": 3}})
		got := h.wait(t, task.ID)
		if got.State != Succeeded || string(got.Result) != "6" || got.Attempts != 3 {
			t.Errorf("task = %s %s attempts %d; want succeeded 6 after 3", got.State, got.Result, got.Attempts)
		}
		atts, _ := h.q.Attempts(context.Background(), task.ID)
		if len(atts) != 3 || atts[0].Outcome != "retry" || atts[0].StatusCode != 503 ||
			atts[2].Outcome != "succeeded" {
			t.Errorf("attempts = %+v", atts)
		}
	})

	t.Run("AttemptsExhausted", func(t *testing.T) {
		var calls atomic.Int32
		srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "database on fire")
		})
		h := newHarness(t, &Options{BackoffBase: time.Millisecond, BackoffCap: time.Millisecond})
		task := h.enqueue(t, Spec{URL: srv.URL, MaxAttempts: 3})
		got := h.wait(t, task.ID)
		if got.State != Failed || got.Attempts != 3 || calls.Load() != 3 {
			t.Errorf("task = %s attempts %d calls %d; want failed after 3", got.State, got.Attempts, calls.Load())
		}
		if got.Error == nil || got.Error.StatusCode != 500 {
			t.Errorf("error = %+v; want status 500", got.Error)
		}
		atts, _ := h.q.Attempts(context.Background(), task.ID)
		if len(atts) != 3 || atts[2].Outcome != "failed" || atts[2].Body != "database on fire" {
			t.Errorf("last attempt = %+v", atts[len(atts)-1])
		}
	})
}

func TestQueue_BackoffSchedule(t *testing.T) {
	var calls atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	})
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	h := newHarness(t, &Options{Clock: clock, BackoffBase: time.Second, BackoffCap: 5 * time.Second})
	task := h.enqueue(t, Spec{URL: srv.URL, MaxAttempts: 5})

	// Retry k waits min(cap, base·2^k) ± 20%; the clock never moves by
	// itself, so each attempt starts only when the test moves it.
	wantBase := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second}
	for k, base := range wantBase {
		h.nextAttempt(t)
		got, err := h.q.Get(context.Background(), task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != Retrying || got.Attempts != k+1 || got.NextAttemptAt == nil {
			t.Fatalf("after attempt %d: %s attempts %d next %v", k+1, got.State, got.Attempts, got.NextAttemptAt)
		}
		delay := got.NextAttemptAt.Sub(clock.Now())
		lo, hi := time.Duration(float64(base)*0.8), min(time.Duration(float64(base)*1.2), 5*time.Second)
		if delay < lo || delay > hi {
			t.Errorf("delay before retry %d = %v; want within [%v, %v]", k, delay, lo, hi)
		}
		if n := calls.Load(); n != int32(k+1) {
			t.Fatalf("calls = %d before the clock moved; want %d", n, k+1)
		}
		clock.waitForTimerAt(t, *got.NextAttemptAt)
		clock.Set(*got.NextAttemptAt)
	}
	h.nextAttempt(t)
	if got := h.wait(t, task.ID); got.State != Failed || got.Attempts != 5 {
		t.Errorf("final = %s after %d; want failed after 5", got.State, got.Attempts)
	}
}

func TestQueue_ScheduledRunsAtItsTime(t *testing.T) {
	var calls atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		multiply(w, r)
	})
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{Clock: clock})
	at := clock.Now().Add(time.Hour)
	task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 1, "y": 2}, RunAt: &at})
	if task.State != Scheduled {
		t.Fatalf("state = %s; want scheduled", task.State)
	}

	// A later task that is due now runs first: the scheduler is awake and
	// has passed over the scheduled one.
	now := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 1, "y": 1}})
	h.wait(t, now.ID)
	if got, _ := h.q.Get(context.Background(), task.ID); got.State != Scheduled || calls.Load() != 1 {
		t.Fatalf("before its time: %s, calls %d; want scheduled, 1", got.State, calls.Load())
	}
	clock.waitForTimerAt(t, at)
	clock.Set(at)
	if got := h.wait(t, task.ID); got.State != Succeeded {
		t.Errorf("after its time: %s", got.State)
	}
}

func TestQueue_WaitWakesOnCompletion(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		multiply(w, r)
	})
	h := newHarness(t, nil)
	task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 3, "y": 3}})
	<-arrived

	done := make(chan *Task)
	go func() {
		got, err := h.q.Wait(context.Background(), task.ID)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	if got, _ := h.q.Get(context.Background(), task.ID); got.State != Active {
		t.Errorf("in flight: state %s; want active", got.State)
	}
	close(release)
	if got := <-done; got.State != Succeeded || string(got.Result) != "9" {
		t.Errorf("Wait = %s %s", got.State, got.Result)
	}

	// Wait on an unknown task fails at once; a cancelled context ends it.
	if _, err := h.q.Wait(context.Background(), ulidFor(t)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wait unknown = %v; want ErrNotFound", err)
	}
}

func ulidFor(t *testing.T) ID {
	t.Helper()
	id, err := newIDSource().next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestQueue_Cancel(t *testing.T) {
	t.Run("Scheduled", func(t *testing.T) {
		srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
			t.Error("a cancelled task was dispatched")
		})
		clock := newFakeClock(time.Now())
		h := newHarness(t, &Options{Clock: clock})
		at := clock.Now().Add(time.Minute)
		task := h.enqueue(t, Spec{URL: srv.URL, RunAt: &at})
		got, err := h.q.Cancel(context.Background(), task.ID)
		if err != nil || got.State != Cancelled {
			t.Fatalf("Cancel = %v, %v", got, err)
		}
		clock.Advance(time.Hour)
		// Prove the scheduler ran past the cancelled task's time.
		marker := receiver(t, multiply)
		h.wait(t, h.enqueue(t, Spec{URL: marker.URL, Args: map[string]any{"x": 1, "y": 1}}).ID)
		if _, err := h.q.Cancel(context.Background(), task.ID); !errors.Is(err, ErrFinal) {
			t.Errorf("second Cancel = %v; want ErrFinal", err)
		}
	})

	t.Run("InFlight", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		aborted := make(chan struct{})
		srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done()
			close(aborted)
		})
		h := newHarness(t, nil)
		task := h.enqueue(t, Spec{URL: srv.URL})
		<-arrived
		if _, err := h.q.Cancel(context.Background(), task.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case <-aborted:
		case <-time.After(10 * time.Second):
			t.Fatal("in-flight request was not aborted")
		}
		h.nextAttempt(t)
		got, _ := h.q.Get(context.Background(), task.ID)
		if got.State != Cancelled || got.Attempts != 1 {
			t.Errorf("after cancel: %s attempts %d; want cancelled 1", got.State, got.Attempts)
		}
		atts, _ := h.q.Attempts(context.Background(), task.ID)
		if len(atts) != 1 || atts[0].Outcome != "cancelled" {
			t.Errorf("attempts = %+v", atts)
		}
	})
}

func TestQueue_Retry(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		multiply(w, r)
	})
	h := newHarness(t, nil)
	task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 4, "y": 5}, MaxAttempts: 1})
	if got := h.wait(t, task.ID); got.State != Failed {
		t.Fatalf("state %s; want failed", got.State)
	}
	unknown := ulidFor(t)
	if _, err := h.q.Retry(context.Background(), unknown); !errors.Is(err, ErrNotFound) ||
		err.Error() != fmt.Sprintf("retry %s: task not found", unknown) {
		t.Errorf("Retry unknown = %v; want ErrNotFound, naming the retry", err)
	}

	fail.Store(false)
	if _, err := h.q.Retry(context.Background(), task.ID); err != nil {
		t.Fatal(err)
	}
	got := h.wait(t, task.ID)
	if got.State != Succeeded || got.Attempts != 2 || string(got.Result) != "20" {
		t.Errorf("after retry: %s attempts %d result %s", got.State, got.Attempts, got.Result)
	}
	atts, _ := h.q.Attempts(context.Background(), task.ID)
	if len(atts) != 2 || atts[0].StatusCode != 400 || atts[1].Outcome != "succeeded" {
		t.Errorf("history = %+v", atts)
	}
	if _, err := h.q.Retry(context.Background(), task.ID); err != nil {
		t.Errorf("retry of a succeeded task: %v", err)
	}
	h.wait(t, task.ID)
}

func TestQueue_Invalid(t *testing.T) {
	h := newHarness(t, &Options{DisableWorkers: true})
	cases := map[string]Spec{
		"NoURL":         {},
		"BadScheme":     {URL: "ftp://127.0.0.1/x"},
		"NoHost":        {URL: "http:///x"},
		"Relative":      {URL: "/multiply"},
		"BadMethod":     {URL: "http://h/", Method: "BREW"},
		"NullArg":       {URL: "http://h/", Args: map[string]any{"x": nil}},
		"NestedArg":     {URL: "http://h/", Args: map[string]any{"x": map[string]any{"a": 1}}},
		"NestedList":    {URL: "http://h/", Args: map[string]any{"x": []any{[]any{1}}}},
		"HeaderCRLF":    {URL: "http://h/", Headers: map[string]string{"X-A": "a\r\nEvil: 1"}},
		"HeaderHost":    {URL: "http://h/", Headers: map[string]string{"Host": "other"}},
		"HeaderWebhook": {URL: "http://h/", Headers: map[string]string{"Webhook-Id": "x"}},
		"BadJSON":       {URL: "http://h/", JSON: json.RawMessage(`{`)},
		"JSONOnGET":     {URL: "http://h/", Method: "GET", JSON: json.RawMessage(`{}`)},
		"BadProtocol":   {URL: "http://h/", Protocol: "soap"},
		"NegAttempts":   {URL: "http://h/", MaxAttempts: -1},
		"BadPort":       {URL: "http://127.0.0.1:99999/x"},
		"HeaderCtrl":    {URL: "http://h/", Headers: map[string]string{"X-A": "a\x1bb"}},
		"HeaderDEL":     {URL: "http://h/", Headers: map[string]string{"X-A": "a\x7fb"}},
		"HeaderTwice":   {URL: "http://h/", Headers: map[string]string{"x-a": "1", "X-A": "2"}},
		"RunAtTooLate":  {URL: "http://h/", RunAt: ptr(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))},
		// JSON cannot carry these, so the HTTP API would store them changed.
		"URLNotUTF8":    {URL: "http://h/\xff"},
		"KeyNotUTF8":    {URL: "http://h/", Key: "k\xff"},
		"HeaderNotUTF8": {URL: "http://h/", Headers: map[string]string{"X-A": "\xff"}},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := h.q.Enqueue(context.Background(), spec); !errors.Is(err, ErrInvalid) {
				t.Errorf("Enqueue = %v; want ErrInvalid", err)
			}
		})
	}
	// A URL that does not parse is named without its password.
	_, err := h.q.Enqueue(context.Background(), Spec{URL: "http://user:s3cret@h:1/x%zz"})
	want := `invalid task: url: parse "http://xxxxx@h:1/x%zz": invalid URL escape "%zz"`
	if err == nil || err.Error() != want {
		t.Errorf("Enqueue of an unparsable URL = %v; want %s", err, want)
	}

	// One bad spec in a batch stores none of it.
	_, err = h.q.EnqueueMany(context.Background(), []Spec{{URL: "http://h/"}, {URL: "gopher://h/"}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("EnqueueMany = %v; want ErrInvalid", err)
	}
	stats, _ := h.q.Stats(context.Background())
	if stats.Total != 0 {
		t.Errorf("stored %d tasks from invalid input", stats.Total)
	}
}

func TestQueue_IdempotencyKey(t *testing.T) {
	h := newHarness(t, &Options{DisableWorkers: true})
	a := h.enqueue(t, Spec{URL: "http://h/a", Key: "order-1"})
	b := h.enqueue(t, Spec{URL: "http://h/b", Key: "order-1"})
	if a.ID != b.ID || b.URL != "http://h/a" || a.Existing || !b.Existing {
		t.Errorf("second enqueue = %s %s existing %v; want the first task", b.ID, b.URL, b.Existing)
	}
	if _, err := h.q.Cancel(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	c := h.enqueue(t, Spec{URL: "http://h/c", Key: "order-1"})
	if c.ID == a.ID {
		t.Error("key still held after cancel")
	}

	// Retrying the cancelled task would give the key two live holders.
	_, err := h.q.Retry(context.Background(), a.ID)
	want := fmt.Sprintf(`retry %s: its idempotency key "order-1" has been taken by task %s `+
		"since it was cancelled", a.ID, c.ID)
	if !errors.Is(err, ErrKeyHeld) || err.Error() != want {
		t.Errorf("Retry of a task whose key was taken = %v; want ErrKeyHeld: %s", err, want)
	}
	if got, _ := h.q.Get(context.Background(), a.ID); got.State != Cancelled {
		t.Errorf("refused retry left the task %s", got.State)
	}
	checkStore(t, h.q)
	if _, err := h.q.Cancel(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.q.Retry(context.Background(), a.ID); err != nil {
		t.Errorf("Retry once the key is free = %v", err)
	}
	if d := h.enqueue(t, Spec{URL: "http://h/d", Key: "order-1"}); d.ID != a.ID {
		t.Errorf("key not held by the retried task: got %s", d.ID)
	}
	checkStore(t, h.q)
}

func TestQueue_RestartRunsWhatWasLeft(t *testing.T) {
	srv := receiver(t, multiply)
	h := newHarness(t, &Options{DisableWorkers: true})
	var ids []ID
	for i := range 50 {
		ids = append(ids, h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": i, "y": 2}}).ID)
	}
	if err := h.q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.q.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := h.q.Enqueue(context.Background(), Spec{URL: srv.URL}); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v; want ErrClosed", err)
	}

	h.open(t, nil)
	for i, id := range ids {
		if got := h.wait(t, id); string(got.Result) != strconv.Itoa(i*2) {
			t.Errorf("task %d result %s", i, got.Result)
		}
	}
	stats, err := h.q.Stats(context.Background())
	if err != nil || stats.Counts["succeeded"] != 50 || stats.Total != 50 {
		t.Errorf("stats = %+v, %v", stats, err)
	}
	checkStore(t, h.q)
}

// checkStore fails the test if the store's invariants do not hold.
func checkStore(t *testing.T, q *Queue) {
	t.Helper()
	q.store.View(func(tx *storage.Tx) error {
		for _, p := range tx.Check() {
			t.Errorf("invariant: %v", p)
		}
		return nil
	})
}

func TestQueue_ConcurrentEnqueueAndList(t *testing.T) {
	srv := receiver(t, multiply)
	h := newHarness(t, &Options{Workers: 8})
	const producers, each = 16, 25
	var wg sync.WaitGroup
	ids := make(chan ID, producers*each)
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				task, err := h.q.Enqueue(context.Background(),
					Spec{URL: srv.URL, Args: map[string]any{"x": p, "y": i}})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- task.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		if got := h.wait(t, id); got.State != Succeeded {
			t.Errorf("%s: %s", id, got.State)
		}
	}
	list, err := h.q.List(context.Background(), ListOptions{State: Succeeded, Limit: 1000})
	if err != nil || len(list) != producers*each {
		t.Fatalf("List = %d tasks, %v", len(list), err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].ID.Compare(list[i].ID) <= 0 {
			t.Fatalf("List not newest first at %d", i)
		}
	}
	checkStore(t, h.q)
}

func TestQueue_CloseAbortsAfterGrace(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	h := newHarness(t, &Options{Grace: 50 * time.Millisecond})
	task := h.enqueue(t, Spec{URL: srv.URL})
	<-arrived
	if err := h.q.Close(); err != nil {
		t.Fatal(err)
	}

	// The aborted attempt left the task as it was, ready to run again.
	h.open(t, &Options{DisableWorkers: true})
	got, err := h.q.Get(context.Background(), task.ID)
	if err != nil || got.State != Pending || got.Attempts != 0 {
		t.Errorf("after abort: %+v, %v; want pending with 0 attempts", got, err)
	}
}

func TestQueue_PerHostLimit(t *testing.T) {
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 6)
	slow := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		multiply(w, r)
	})
	fast := receiver(t, multiply)
	h := newHarness(t, &Options{Workers: 8, PerHost: 2})

	var slowIDs []ID
	for i := range 6 {
		slowIDs = append(slowIDs, h.enqueue(t, Spec{URL: slow.URL, Args: map[string]any{"x": i, "y": 1}}).ID)
	}
	// The slow host holds two workers; the others still serve the fast one.
	fastTask := h.enqueue(t, Spec{URL: fast.URL, Args: map[string]any{"x": 2, "y": 2}})
	if got := h.wait(t, fastTask.ID); got.State != Succeeded {
		t.Fatalf("fast task: %s", got.State)
	}
	<-arrived
	<-arrived
	close(release)
	for _, id := range slowIDs {
		h.wait(t, id)
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency on one host = %d; want 2", p)
	}
}

func TestQueue_CancelThenRetryInFlight(t *testing.T) {
	var calls atomic.Int32
	arrived := make(chan struct{})
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(arrived)
			<-r.Context().Done() // the first attempt hangs until aborted
			return
		}
		multiply(w, r)
	})
	h := newHarness(t, nil)
	// Later tasks keep the scheduler's scan position past the first one.
	task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 5, "y": 5}})
	<-arrived
	for i := range 5 {
		h.wait(t, h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": i, "y": 1}}).ID)
	}
	if _, err := h.q.Cancel(context.Background(), task.ID); err != nil {
		t.Fatal(err)
	}
	// Retry before the aborted attempt's outcome is stored: the lease is
	// still held, so the scheduler passes the task over for now.
	if _, err := h.q.Retry(context.Background(), task.ID); err != nil {
		t.Fatal(err)
	}
	got := h.wait(t, task.ID)
	if got.State != Succeeded || string(got.Result) != "25" {
		t.Errorf("after cancel and retry: %s %s", got.State, got.Result)
	}
	atts, _ := h.q.Attempts(context.Background(), task.ID)
	if len(atts) != 2 || atts[0].Outcome != "cancelled" || atts[1].Outcome != "succeeded" {
		t.Errorf("history = %+v", atts)
	}
}

// TestQueue_ScanRewindsForSupersededLease drives the scheduler's scan by
// hand: a task retried by a user while its old attempt is still leased sits
// behind the scan position once later tasks are leased, and must be found
// again when that lease drops.
func TestQueue_ScanRewindsForSupersededLease(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{DisableWorkers: true, Clock: clock})
	ctx := context.Background()

	a := h.enqueue(t, Spec{URL: "http://127.0.0.1:9/a"})
	leased, _, err := h.q.leaseDue(1)
	if err != nil || len(leased) != 1 || leased[0].task.ID != a.ID {
		t.Fatalf("first scan = %v, %v; want task a", leased, err)
	}
	la := leased[0]

	// The user cancels and retries a while its attempt is in flight, and a
	// later task is leased: the scan position moves past a's new entry.
	clock.Advance(time.Second)
	if _, err := h.q.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.q.Retry(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	b := h.enqueue(t, Spec{URL: "http://127.0.0.1:9/b"})
	if leased, _, _ = h.q.leaseDue(1); len(leased) != 1 || leased[0].task.ID != b.ID {
		t.Fatalf("second scan = %v; want task b", leased)
	}

	// a's old attempt ends: its outcome is superseded and its lease drops.
	h.q.finish(la, 1, clock.Now(), dispatchOutcomeRetry())
	h.nextAttempt(t)
	if leased, _, _ = h.q.leaseDue(1); len(leased) != 1 || leased[0].task.ID != a.ID {
		t.Fatalf("scan after the lease dropped = %v; want task a again", leased)
	}
}

func dispatchOutcomeRetry() dispatch.Outcome {
	return dispatch.Outcome{Verdict: dispatch.Retry,
		Err: &dispatch.Error{Kind: dispatch.KindTransport, Message: "aborted"}}
}

func TestQueue_PerHostRate(t *testing.T) {
	var calls atomic.Int32
	limited := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		multiply(w, r)
	})
	other := receiver(t, multiply)
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{Clock: clock, PerHostRate: 2})

	var ids []ID
	for i := range 5 {
		ids = append(ids, h.enqueue(t, Spec{URL: limited.URL, Args: map[string]any{"x": i, "y": 1}}).ID)
	}
	// A burst of two, then one more each half second of the clock. A task
	// for another host, enqueued later, proves the scheduler went past.
	h.wait(t, ids[0])
	h.wait(t, ids[1])
	h.wait(t, h.enqueue(t, Spec{URL: other.URL, Args: map[string]any{"x": 1, "y": 1}}).ID)
	if n := calls.Load(); n != 2 {
		t.Fatalf("calls before the clock moved = %d; want 2", n)
	}
	for i := 2; i < 5; i++ {
		clock.Advance(500 * time.Millisecond)
		h.wait(t, ids[i])
		if n := calls.Load(); n != int32(i+1) {
			t.Fatalf("calls after %d ticks = %d; want %d", i-1, n, i+1)
		}
	}
}

func TestQueue_RetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		multiply(w, r)
	})
	clock := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := newHarness(t, &Options{Clock: clock, BackoffBase: time.Second, BackoffCap: time.Hour})
	task := h.enqueue(t, Spec{URL: srv.URL, Args: map[string]any{"x": 3, "y": 4}})
	h.nextAttempt(t)

	// The endpoint asked for 120s, later than the 1s backoff: it wins.
	got, _ := h.q.Get(context.Background(), task.ID)
	if got.State != Retrying || got.Error == nil || got.Error.StatusCode != 429 {
		t.Fatalf("after 429: %s %+v", got.State, got.Error)
	}
	if d := got.NextAttemptAt.Sub(clock.Now()); d != 120*time.Second {
		t.Errorf("next attempt in %v; want 120s", d)
	}
	clock.waitForTimerAt(t, *got.NextAttemptAt)
	clock.Advance(119 * time.Second)
	if n := calls.Load(); n != 1 {
		t.Fatalf("calls before Retry-After passed = %d", n)
	}
	clock.Advance(time.Second)
	if got := h.wait(t, task.ID); got.State != Succeeded || string(got.Result) != "12" {
		t.Errorf("final: %s %s", got.State, got.Result)
	}

	// Retry-After never moves past the cap.
	if d := h.q.delay(0, 3*time.Hour); d != time.Hour {
		t.Errorf("delay with Retry-After 3h = %v; want the 1h cap", d)
	}
}

func TestQueue_ClientErrorFailsAtOnce(t *testing.T) {
	var calls atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no such multiplier", http.StatusNotFound)
	})
	h := newHarness(t, nil)
	task := h.enqueue(t, Spec{URL: srv.URL})
	got := h.wait(t, task.ID)
	if got.State != Failed || got.Attempts != 1 || calls.Load() != 1 ||
		got.Error.Kind != "http" || got.Error.StatusCode != 404 {
		t.Errorf("task = %s after %d attempts (%d calls), error %+v; want failed at once with 404",
			got.State, got.Attempts, calls.Load(), got.Error)
	}
}

func TestQueue_OneRequestInFlightPerTask(t *testing.T) {
	// Every attempt hangs past its deadline. The next attempt of a task
	// must start only after the previous request was cancelled.
	var inFlight, overlaps atomic.Int32
	srv := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer inFlight.Add(-1)
		<-r.Context().Done()
	})
	// The backoff leaves the server time to see the client hang up; an
	// overlap would come from a second request sent before the first was
	// cancelled, which no backoff hides.
	h := newHarness(t, &Options{BackoffBase: 30 * time.Millisecond, BackoffCap: 30 * time.Millisecond})
	task := h.enqueue(t, Spec{URL: srv.URL, MaxAttempts: 4, Timeout: Duration(50 * time.Millisecond)})
	got := h.wait(t, task.ID)
	if got.State != Failed || got.Attempts != 4 || got.Error.Kind != "timeout" {
		t.Errorf("task = %s after %d, error %+v; want failed after 4 timeouts", got.State, got.Attempts, got.Error)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d attempts overlapped the previous one", n)
	}
}
