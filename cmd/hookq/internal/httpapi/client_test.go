package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookq/hookq/queue"
)

// unixClient serves b's queue on a unix socket in a temp dir and returns a
// client of it.
func unixClient(t *testing.T, b *bundle) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hookq.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: NewHandler(b.q, nil), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	c := NewUnixClient(sock)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
	})
	return c
}

func TestClient(t *testing.T) {
	b := setup(t)
	recv := multiply(t)
	clients := map[string]*Client{
		"Unix": unixClient(t, b),
		"TCP":  NewClient(b.api.URL+"/", nil),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { c.Close() })
			ctx := t.Context()

			// Enqueue and wait for the result.
			task, err := c.Enqueue(ctx, queue.Spec{URL: recv.URL,
				Args: map[string]any{"x": 10, "y": 10}})
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			done, err := c.Wait(ctx, task.ID)
			if err != nil || done.State != queue.Succeeded || string(done.Result) != "100" {
				t.Fatalf("Wait = %v, %v; want succeeded with 100", done, err)
			}
			got, err := c.Get(ctx, task.ID)
			if err != nil || got.ID != task.ID {
				t.Errorf("Get = %v, %v", got, err)
			}
			atts, err := c.Attempts(ctx, task.ID)
			if err != nil || len(atts) != 1 {
				t.Errorf("Attempts = %v, %v; want 1 attempt", atts, err)
			}
			list, err := c.List(ctx, queue.ListOptions{State: queue.Succeeded, Limit: 1})
			if err != nil || len(list) != 1 {
				t.Errorf("List = %v, %v; want 1 task", list, err)
			}
			if err := c.Health(ctx); err != nil {
				t.Errorf("Health: %v", err)
			}
			if s, err := c.Stats(ctx); err != nil || s.Total == 0 {
				t.Errorf("Stats = %v, %v", s, err)
			}

			// Errors map back to the queue's sentinels.
			if _, err := c.Cancel(ctx, task.ID); !errors.Is(err, queue.ErrFinal) {
				t.Errorf("Cancel of a final task: %v; want ErrFinal", err)
			}
			if _, err := c.Retry(ctx, task.ID); err != nil {
				t.Errorf("Retry: %v", err)
			}
			var unknown queue.ID
			if _, err := c.Get(ctx, unknown); !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("Get unknown: %v; want ErrNotFound", err)
			}
			_, err = c.Enqueue(ctx, queue.Spec{URL: "ftp://127.0.0.1/"})
			var apiErr *Error
			if !errors.Is(err, queue.ErrInvalid) || !errors.As(err, &apiErr) ||
				apiErr.StatusCode != http.StatusBadRequest {
				t.Errorf("Enqueue ftp: %v; want a 400 *Error wrapping ErrInvalid", err)
			}
		})
	}
}

func TestClient_PollTimeout(t *testing.T) {
	b := setup(t)
	recv := newBlocker(t)
	c := unixClient(t, b)
	task, err := c.Enqueue(t.Context(), queue.Spec{URL: recv.srv.URL})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	recv.waitArrival(t)
	got, err := c.Poll(t.Context(), task.ID, 10*time.Millisecond)
	if err != nil || got.State.Final() {
		t.Errorf("Poll = %v, %v; want the task not final", got, err)
	}

	// A cancelled context ends the long poll.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Wait(ctx, task.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v; want context.Canceled", err)
	}
}

func TestError_Unwrap(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{400, CodeInvalid, queue.ErrInvalid},
		{404, CodeNotFound, queue.ErrNotFound},
		{409, CodeFinal, queue.ErrFinal},
		{409, CodeNotFinal, queue.ErrNotFinal},
		{503, CodeClosed, queue.ErrClosed},
		{404, "", queue.ErrNotFound},
		{404, "no_route", nil},
		{500, CodeInternal, nil},
	}
	for _, tt := range tests {
		err := &Error{StatusCode: tt.status, Code: tt.code, Message: "m"}
		if got := err.Unwrap(); got != tt.want {
			t.Errorf("Error{%d, %q}.Unwrap() = %v; want %v", tt.status, tt.code, got, tt.want)
		}
	}
}

// TestClient_EnqueueLargeTask sends the largest task the queue takes, and
// a JSON body full of characters that json.Marshal would escape, and
// checks that the server stores both as given.
func TestClient_EnqueueLargeTask(t *testing.T) {
	b := setup(t)
	c := unixClient(t, b)
	args := make(map[string]any)
	for i := range 16 {
		args[fmt.Sprint("a", i)] = strings.Repeat("y", 64000)
	}
	body := json.RawMessage(`{"b":"` + strings.Repeat("<&>", 300000) + `"}`)
	later := time.Now().Add(time.Hour)
	for name, spec := range map[string]queue.Spec{
		"Escapable": {URL: "http://127.0.0.1:1/", JSON: body, RunAt: &later},
		"Largest":   {URL: "http://127.0.0.1:1/", JSON: body, Args: args, RunAt: &later},
	} {
		t.Run(name, func(t *testing.T) {
			if err := spec.Validate(); err != nil {
				t.Fatalf("the task is not valid: %v", err)
			}
			task, err := c.Enqueue(t.Context(), spec)
			if err != nil {
				t.Fatalf("Enqueue of a valid task of %d bytes of body: %v", len(body), err)
			}
			stored, err := b.q.Get(t.Context(), task.ID)
			if err != nil || string(stored.JSON) != string(body) {
				t.Errorf("stored body differs from the one sent (%v)", err)
			}
		})
	}
}
