package hookqtest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookq/hookq/dispatch"
	"github.com/hookq/hookq/queue"
)

// TestMain fails the run if a handler's goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// multiply answers x*y as Celery's HTTP callback protocol does.
func multiply(w http.ResponseWriter, r *http.Request) {
	x, errx := strconv.Atoi(r.FormValue("x"))
	y, erry := strconv.Atoi(r.FormValue("y"))
	if errx != nil || erry != nil {
		fmt.Fprint(w, `{"status":"failure","reason":"x and y must be integers"}`)
		return
	}
	fmt.Fprintf(w, `{"status":"success","retval":%d}`, x*y)
}

func enqueue(t *testing.T, q *queue.Queue, spec queue.Spec) *queue.Task {
	t.Helper()
	task, err := q.Enqueue(context.Background(), spec)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return task
}

// waitFinal is WaitFinal with a deadline that fails the test, so that a
// hang reports itself rather than stalling the run.
func waitFinal(t *testing.T, q *queue.Queue) []*queue.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tasks, err := WaitFinal(ctx, q)
	if err != nil {
		t.Fatalf("WaitFinal: %v", err)
	}
	return tasks
}

// attempts returns the attempt history of task id.
func attempts(t *testing.T, q *queue.Queue, id queue.ID) []queue.Attempt {
	t.Helper()
	atts, err := q.Attempts(context.Background(), id)
	if err != nil {
		t.Fatalf("Attempts: %v", err)
	}
	return atts
}

func TestOpen(t *testing.T) {
	t.Run("DeliversInProcess", func(t *testing.T) {
		// .invalid never resolves: a task succeeds only if nothing is dialled.
		var mu sync.Mutex
		seen := map[string]*http.Request{}
		q := Open(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[r.Header.Get("webhook-id")] = r
			mu.Unlock()
			multiply(w, r)
		}), nil)
		a := enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/multiply", Args: map[string]any{"x": 6, "y": 7}})
		b := enqueue(t, q, queue.Spec{URL: "https://other.invalid:8443/m?y=2", Method: "POST",
			Args: map[string]any{"x": 21}})

		tasks := waitFinal(t, q)
		if len(tasks) != 2 || tasks[0].ID != a.ID || tasks[1].ID != b.ID {
			t.Fatalf("tasks = %v; want a and b, oldest first", tasks)
		}
		for _, task := range tasks {
			if task.State != queue.Succeeded || string(task.Result) != "42" {
				t.Errorf("task %s = %s result %s; want succeeded 42", task.URL, task.State, task.Result)
			}
		}

		// The handler saw the requests as a server would.
		mu.Lock()
		ra, rb := seen[a.ID.String()], seen[b.ID.String()]
		mu.Unlock()
		if ra == nil || rb == nil {
			t.Fatalf("handler saw %d requests by webhook-id; want a and b", len(seen))
		}
		if ra.Host != "hooks.invalid" || ra.RequestURI != "/multiply?x=6&y=7" || ra.TLS != nil {
			t.Errorf("GET seen as host %q target %q tls %v", ra.Host, ra.RequestURI, ra.TLS != nil)
		}
		if rb.Method != "POST" || rb.Host != "other.invalid:8443" || rb.TLS == nil ||
			rb.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("POST seen as %s host %q tls %v type %q", rb.Method, rb.Host, rb.TLS != nil,
				rb.Header.Get("Content-Type"))
		}
		if !strings.HasPrefix(ra.UserAgent(), "hookq/") || ra.RemoteAddr == "" {
			t.Errorf("user agent %q, remote address %q", ra.UserAgent(), ra.RemoteAddr)
		}
	})

	t.Run("RetriesQuickly", func(t *testing.T) {
		var calls atomic.Int32
		q := Open(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) < 3 {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, `{"status":"success","retval":"third time"}`)
		}), nil)
		task := enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/"})
		got := waitFinal(t, q)[0]
		if got.State != queue.Succeeded || got.Attempts != 3 {
			t.Errorf("task = %s after %d attempts; want succeeded after 3", got.State, got.Attempts)
		}
		atts := attempts(t, q, task.ID)
		if len(atts) != 3 || atts[0].StatusCode != 503 || atts[0].Outcome != "retry" {
			t.Errorf("attempts = %+v", atts)
		}
	})

	t.Run("OptionsKept", func(t *testing.T) {
		opts := &queue.Options{MaxAttempts: 1, Dispatch: dispatch.Options{UserAgent: "probe/1"}}
		var ua atomic.Value
		q := Open(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ua.Store(r.UserAgent())
			w.WriteHeader(http.StatusInternalServerError)
		}), opts)
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/"})
		got := waitFinal(t, q)[0]
		if got.State != queue.Failed || got.Attempts != 1 || got.Error == nil || got.Error.StatusCode != 500 {
			t.Errorf("task = %s attempts %d error %v; want failed at once with 500",
				got.State, got.Attempts, got.Error)
		}
		if ua.Load() != "probe/1" {
			t.Errorf("user agent = %v; want probe/1", ua.Load())
		}
		if opts.Dispatch.Transport != nil || opts.NoSync || opts.BackoffBase != 0 {
			t.Error("Open modified the caller's options")
		}
	})
}

func TestTransport(t *testing.T) {
	// one opens a queue that gives each task one attempt.
	one := func(t *testing.T, h http.HandlerFunc) *queue.Queue {
		return Open(t, h, &queue.Options{MaxAttempts: 1,
			Dispatch: dispatch.Options{MaxBodyBytes: 1 << 10}})
	}

	t.Run("Deadline", func(t *testing.T) {
		gone := make(chan struct{})
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			close(gone)
		})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/", Timeout: queue.Duration(50 * time.Millisecond)})
		got := waitFinal(t, q)[0]
		if got.State != queue.Failed || got.Error == nil || got.Error.Kind != dispatch.KindTimeout {
			t.Errorf("task = %s error %v; want failed with timeout", got.State, got.Error)
		}
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatal("handler's context not done after the deadline")
		}
	})

	t.Run("DeadlineCoversTheBody", func(t *testing.T) {
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"status":"success",`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/", Timeout: queue.Duration(50 * time.Millisecond)})
		got := waitFinal(t, q)[0]
		if got.Error == nil || got.Error.Kind != dispatch.KindTimeout {
			t.Errorf("task = %s error %v; want a timeout", got.State, got.Error)
		}
	})

	t.Run("BodyLimit", func(t *testing.T) {
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"status":"success","retval":"%s"}`, strings.Repeat("x", 4<<10))
		})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/"})
		got := waitFinal(t, q)[0]
		if got.Error == nil || got.Error.Kind != dispatch.KindTooLarge {
			t.Errorf("task = %s error %v; want too_large", got.State, got.Error)
		}
	})

	t.Run("Redirect", func(t *testing.T) {
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new?"+r.URL.RawQuery, http.StatusFound)
				return
			}
			multiply(w, r)
		})
		get := enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/old", Args: map[string]any{"x": 2, "y": 4}})
		post := enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/old", Method: "POST"})
		byID := map[queue.ID]*queue.Task{}
		for _, task := range waitFinal(t, q) {
			byID[task.ID] = task
		}
		if g := byID[get.ID]; g.State != queue.Succeeded || string(g.Result) != "8" {
			t.Errorf("redirected GET = %s result %s; want succeeded 8", g.State, g.Result)
		}
		if p := byID[post.ID]; p.State != queue.Failed || !strings.Contains(p.Error.Message, "POST to GET") {
			t.Errorf("redirected POST = %s error %v; want the redirect refused", p.State, p.Error)
		}
	})

	t.Run("GzipReply", func(t *testing.T) {
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			fmt.Fprint(zw, `{"status":"success","retval":"unzipped"}`)
			zw.Close()
		})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/"})
		if got := waitFinal(t, q)[0]; string(got.Result) != `"unzipped"` {
			t.Errorf("result = %s error %v; want \"unzipped\"", got.Result, got.Error)
		}
	})

	t.Run("HeadAndEmptyReplies", func(t *testing.T) {
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "HEAD" {
				fmt.Fprint(w, "a HEAD reply's body is dropped")
			}
		})
		head := enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/", Method: "HEAD", Protocol: "plain"})
		empty := enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/"})
		byID := map[queue.ID]*queue.Task{}
		for _, task := range waitFinal(t, q) {
			byID[task.ID] = task
		}
		if h := byID[head.ID]; h.State != queue.Succeeded || string(h.Result) != `""` {
			t.Errorf("HEAD = %s result %s; want succeeded \"\"", h.State, h.Result)
		}
		if e := byID[empty.ID]; e.Error == nil || e.Error.Kind != dispatch.KindInvalidResponse {
			t.Errorf("empty celery reply = %s error %v; want invalid_response", e.State, e.Error)
		}
	})

	t.Run("PanickingHandler", func(t *testing.T) {
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/late" {
				fmt.Fprint(w, `{"status":`)
			}
			panic("receiver bug")
		})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/early"})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/late"})
		for _, got := range waitFinal(t, q) {
			if got.State != queue.Failed || got.Error == nil || !strings.Contains(got.Error.Message, "receiver bug") {
				t.Errorf("task %s = %s error %v; want failed naming the panic", got.URL, got.State, got.Error)
			}
		}
	})

	t.Run("RequestBody", func(t *testing.T) {
		var body atomic.Value
		q := one(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			body.Store(fmt.Sprintf("%s %d %s", r.Header.Get("Content-Type"), r.ContentLength, b))
			fmt.Fprint(w, `{"status":"success","retval":null}`)
		})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/", JSON: []byte(`{"order":1}`)})
		waitFinal(t, q)
		if got := body.Load(); got != `application/json 11 {"order":1}` {
			t.Errorf("handler read %q", got)
		}
	})
}

func TestWaitFinal(t *testing.T) {
	t.Run("TasksEnqueuedWhileWaiting", func(t *testing.T) {
		// The handler of the first task enqueues a second. It runs only
		// once a task is enqueued, after q is set.
		var q *queue.Queue
		q = Open(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/first" {
				if _, err := q.Enqueue(r.Context(), queue.Spec{URL: "http://hooks.invalid/second"}); err != nil {
					t.Errorf("Enqueue from the handler: %v", err)
				}
			}
			fmt.Fprint(w, `{"status":"success","retval":1}`)
		}), nil)
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/first"})
		tasks := waitFinal(t, q)
		if len(tasks) != 2 || tasks[1].URL != "http://hooks.invalid/second" {
			t.Fatalf("tasks = %v; want first and second", tasks)
		}
		for _, task := range tasks {
			if task.State != queue.Succeeded {
				t.Errorf("task %s = %s; want succeeded", task.URL, task.State)
			}
		}
	})

	t.Run("NoWorkers", func(t *testing.T) {
		q := Open(t, http.NotFoundHandler(), &queue.Options{DisableWorkers: true})
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/"})
		if _, err := WaitFinal(context.Background(), q); !errors.Is(err, queue.ErrNoWorkers) {
			t.Errorf("WaitFinal = %v; want ErrNoWorkers", err)
		}
	})

	t.Run("ContextDone", func(t *testing.T) {
		q := Open(t, http.NotFoundHandler(), nil)
		enqueue(t, q, queue.Spec{URL: "http://hooks.invalid/", RunAt: ptr(time.Now().Add(time.Hour))})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := WaitFinal(ctx, q); !errors.Is(err, context.Canceled) {
			t.Errorf("WaitFinal = %v; want context.Canceled", err)
		}
	})
}

func TestTasks(t *testing.T) {
	q := Open(t, http.NotFoundHandler(), &queue.Options{DisableWorkers: true})
	specs := make([]queue.Spec, queue.MaxListLimit+10)
	for i := range specs {
		specs[i] = queue.Spec{URL: fmt.Sprintf("http://hooks.invalid/%d", i)}
	}
	want, err := q.EnqueueMany(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Tasks(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Tasks returned %d tasks; want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			t.Fatalf("task %d = %s; want %s (oldest first)", i, got[i].ID, want[i].ID)
		}
	}
}

func ptr[T any](v T) *T { return &v }
