package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/queue"
)

// fakeServer serves handler on dir's socket, where the commands look for
// a server, so that a test can make a server fail the way it wants.
func fakeServer(t *testing.T, dir string, handler http.HandlerFunc) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, socketFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: patience}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// hangUp closes the request's connection without a reply, as a server
// killed with kill -9 in the middle of it does.
func hangUp(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

// batchReply answers a batch enqueue as a server would, with made-up IDs.
func batchReply(t *testing.T, w http.ResponseWriter, r *http.Request, first int) {
	var specs []queue.Spec
	if err := json.NewDecoder(r.Body).Decode(&specs); err != nil {
		t.Errorf("fake server: decode batch: %v", err)
	}
	reply := httpapi.BatchReply{Existing: []int{}}
	for i, spec := range specs {
		id, err := queue.ParseID(fmt.Sprintf("01ARZ3NDEKTSV4RRFF%08d", first+i))
		if err != nil {
			t.Fatal(err)
		}
		reply.Tasks = append(reply.Tasks, &queue.Task{ID: id, URL: spec.URL, State: queue.Pending})
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(reply)
}

// TestAdd_FromChunkOutcome makes the server fail on the second chunk of
// add --from, by hanging up or by an error reply, and checks what add
// says of its lines: a chunk without a reply may have been added.
func TestAdd_FromChunkOutcome(t *testing.T) {
	t.Parallel()
	var input strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&input, `{"url":"http://127.0.0.1:1/%d"}`+"\n", i)
	}
	tests := []struct {
		name string
		fail func(t *testing.T, w http.ResponseWriter)
		want string
	}{
		{"NoReply", hangUp, "; the 1000 tasks before line 1001 were added, lines 1001 to " +
			"2000 may or may not have been added, later ones were not; with a \"key\" on every " +
			"line, adding the file again adds no task twice\n"},
		{"ErrorReply", func(t *testing.T, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInsufficientStorage)
			io.WriteString(w, `{"error":"enqueue: no space left on device","code":"no_space"}`)
		}, "; the 1000 tasks before line 1001 were added, lines 1001 to 2000 and later ones " +
			"were not added\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var batches atomic.Int32
			fakeServer(t, dir, func(w http.ResponseWriter, r *http.Request) {
				if batches.Add(1) == 1 {
					batchReply(t, w, r, 0)
					return
				}
				tt.fail(t, w)
			})
			r := hookqIn(t, dir, input.String(), "add", "--from", "-")
			if r.code != 1 || len(strings.Fields(r.stdout)) != 1000 ||
				!strings.HasPrefix(r.stderr, "hookq: add lines 1001 to 2000: ") ||
				!strings.HasSuffix(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("add --from = exit %d, %d IDs, stderr:\n%s\nwant exit 1, 1000 IDs and "+
					"one line for lines 1001 to 2000 ending:\n%s",
					r.code, len(strings.Fields(r.stdout)), r.stderr, tt.want)
			}
			if n := batches.Load(); n != 2 {
				t.Errorf("add --from sent %d batches; want it to stop after the failed one", n)
			}
		})
	}

	// One task without a reply: add says so too.
	t.Run("AddNoReply", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		fakeServer(t, dir, func(w http.ResponseWriter, r *http.Request) { hangUp(t, w) })
		r := hookq(t, dir, "add", "http://127.0.0.1:1/")
		want := "; the task may or may not have been added; with --key, adding it again is safe\n"
		if r.code != 1 || !strings.HasPrefix(r.stderr, "hookq: the server stopped answering (") ||
			!strings.HasSuffix(r.stderr, want) {
			t.Errorf("add = exit %d, stderr %q; want 1 and ending with %q", r.code, r.stderr, want)
		}
	})
}

// TestCLI_BulkThroughFailingServer stops a bulk change part way through a
// server, by Ctrl-C and by the server's death, and checks that the
// command says what became of it.
func TestCLI_BulkThroughFailingServer(t *testing.T) {
	t.Parallel()
	const kept = "; what the server did before it stopped stays done (it commits at most " +
		"1,000 tasks at a time), how many is not known here; run the command again to finish\n"

	t.Run("Interrupted", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		arrived := make(chan struct{}, 1)
		fakeServer(t, dir, func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-r.Context().Done() // the command hung up
		})
		p := start(t, dir, "retry", "--state", "failed", "--yes")
		select {
		case <-arrived:
		case <-time.After(patience):
			t.Fatal("retry --state sent no request")
		}
		p.signal(t, os.Interrupt)
		want := "hookq: retry --state failed: interrupted" + kept
		if code := p.wait(t); code != 1 || p.log.String()+"\n" != want {
			t.Errorf("interrupted retry --state = exit %d, stderr:\n%s\nwant 1 and:\n%s",
				code, p.log.String(), want)
		}
	})
	t.Run("ServerDied", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		fakeServer(t, dir, func(w http.ResponseWriter, r *http.Request) { hangUp(t, w) })
		for _, args := range [][]string{
			{"cancel", "--state", "retrying", "--yes"},
			{"purge", "--older-than", "1h"},
		} {
			r := hookq(t, dir, args...)
			op := strings.Join(args[:3], " ")
			if args[0] == "purge" {
				op = "purge"
			}
			want := "hookq: " + op + ": the server stopped answering (EOF)" + kept
			if r.code != 1 || r.stdout != "" || r.stderr != want {
				t.Errorf("hookq %v = exit %d, stdout %q, stderr:\n%s\nwant 1 and:\n%s",
					args, r.code, r.stdout, r.stderr, want)
			}
		}
	})
	t.Run("ServerFailed", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		fakeServer(t, dir, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInsufficientStorage)
			io.WriteString(w, `{"error":"change failed tasks: no space left on device","code":"no_space"}`)
		})
		r := hookq(t, dir, "retry", "--state", "failed", "--yes")
		want := "hookq: retry --state failed: change failed tasks: no space left on device" + kept
		if r.code != 1 || r.stderr != want {
			t.Errorf("retry --state = exit %d, stderr:\n%s\nwant 1 and:\n%s", r.code, r.stderr, want)
		}
	})
}

func TestBulkFailed(t *testing.T) {
	t.Parallel()
	q, err := queue.Open(filepath.Join(t.TempDir(), storeFile), &queue.Options{DisableWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	server := &serverClient{c: httpapi.NewUnixClient(filepath.Join(t.TempDir(), socketFile))}
	defer server.Close()
	interrupted, cancel := context.WithCancel(context.Background())
	cancel()
	diskFull := errors.New("change failed tasks: no space left on device")
	eof := fmt.Errorf("POST /v1/tasks/retry: %w",
		&url.Error{Op: "Post", URL: "http://hookq/v1/tasks/retry", Err: io.EOF})
	refused := &httpapi.Error{StatusCode: http.StatusConflict, Code: httpapi.CodeFinal,
		Message: "cancel all failed tasks: task is already final"}
	dial := fmt.Errorf("POST /v1/tasks/retry: %w", &url.Error{Op: "Post", URL: "http://hookq/",
		Err: &net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}})
	const unknown = "; what the server did before it stopped stays done (it commits at most " +
		"1,000 tasks at a time), how many is not known here; run the command again to finish"

	tests := []struct {
		name string
		ctx  context.Context
		api  taskAPI
		n    int
		err  error
		want string
	}{
		{"DirectInterrupted", interrupted, q, 1500, context.Canceled,
			"retry --state failed: interrupted; the 1500 tasks retried before stay retried; " +
				"run the command again to finish"},
		{"DirectInterruptedAtOnce", interrupted, q, 0, context.Canceled,
			"retry --state failed: interrupted before any task was retried"},
		{"DirectFailed", context.Background(), q, 1000, diskFull, "retry --state failed: " +
			"change failed tasks: no space left on device (the 1000 tasks retried before stay retried)"},
		{"DirectFailedAtOnce", context.Background(), q, 0, diskFull, diskFull.Error()},
		{"ServerInterrupted", interrupted, server, 0, eof, "retry --state failed: interrupted" + unknown},
		{"ServerDied", context.Background(), server, 0, eof,
			"retry --state failed: the server stopped answering (EOF)" + unknown},
		{"ServerRefused", context.Background(), server, 0, refused, refused.Message},
		{"ServerGone", context.Background(), server, 0, dial, dial.Error()},
	}
	for _, tt := range tests {
		err := bulkFailed(tt.ctx, tt.api, "retry --state failed", "retried", tt.n, tt.err)
		if err.Error() != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: %v\nwant %s, wrapping %v", tt.name, err, tt.want, tt.err)
		}
	}
}

// TestCLI_SameWithAndWithoutServer checks that add gives the same answer
// whether a server takes the task or the store does.
func TestCLI_SameWithAndWithoutServer(t *testing.T) {
	t.Parallel()
	files := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(files, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return "@" + path
	}
	big := write("big.json", `"`+strings.Repeat("a", 3<<20)+`"`)
	// 900 KB compacted; escaped as json.Marshal escapes <, > and &, it
	// would be 5 MB.
	escapable := `{"b":"` + strings.Repeat("<&>", 300000) + `"}`
	escapableFile := write("escapable.json", escapable)
	largest := []string{"--in", "1h", "--json", escapableFile, "http://127.0.0.1:1/"}
	for i := range 16 { // arguments of 1 MB, with a body of 900 KB
		largest = append(largest, fmt.Sprintf("a%d=%s", i, strings.Repeat("y", 64000)))
	}

	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if mode == "Server" {
				startServe(t, dir)
			}
			for _, tt := range []struct {
				name   string
				args   []string
				stderr string
			}{
				{"BodyOverLimit", []string{"add", "--json", big, "http://127.0.0.1:1/"},
					"hookq: invalid task: json body is 3145730 bytes; the limit is 1048576\n"},
				{"KeyNotUTF8", []string{"add", "--key", "k\xff", "http://127.0.0.1:1/"},
					"hookq: invalid task: key is not valid UTF-8\n"},
				{"URLPassword", []string{"add", "http://user:s3cret@127.0.0.1:18002/x%zz"},
					`hookq: invalid task: url: parse "http://xxxxx@127.0.0.1:18002/x%zz": ` +
						`invalid URL escape "%zz"` + "\n"},
			} {
				r := hookq(t, dir, tt.args...)
				if r.code != 2 || r.stderr != tt.stderr {
					t.Errorf("%s: exit %d, stderr %q; want 2, %q", tt.name, r.code, r.stderr, tt.stderr)
				}
			}

			// The largest task is taken, and its body stored as given.
			id := addTask(t, dir, largest...)
			if body := showJSON(t, dir, id)["json"].(map[string]any)["b"]; body != escapable[6:len(escapable)-2] {
				t.Errorf("the body was stored changed")
			}
		})
	}
}

// TestCLI_HidesURLPasswordsInErrors gives URLs that do not parse, with a
// password, everywhere a URL is taken.
func TestCLI_HidesURLPasswordsInErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := hookqIn(t, dir, `{"url":"http://user:s3cret@127.0.0.1:1/x%zz"}`+"\n", "add", "--from", "-")
	want := `hookq: line 1: url: parse "http://xxxxx@127.0.0.1:1/x%zz": invalid URL escape "%zz"`
	if r.code != 2 || !strings.HasPrefix(r.stderr, want+"\n") {
		t.Errorf("add --from = exit %d, stderr %q; want 2 and %q", r.code, r.stderr, want)
	}
	for _, route := range []string{"m=GET:ftp://user:s3cret@h/", "m=http://user:s3cret@h/%zz",
		"http://user:s3cret@h/"} {
		r := hookq(t, dir, "serve", "--listen", "127.0.0.1:0", "--route", route)
		if r.code != 2 || strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, "xxxxx@h") {
			t.Errorf("serve --route %q = exit %d, stderr %q; want 2 and the password hidden",
				route, r.code, r.stderr)
		}
	}
}

func TestCLI_Messages(t *testing.T) {
	t.Parallel()
	const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	for _, mode := range []string{"Direct", "Server"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first := addTask(t, dir, "--in", "1h", "--key", "k", "http://127.0.0.1:1/")
			mustRun(t, dir, "cancel", first)
			holder := addTask(t, dir, "--in", "1h", "--key", "k", "http://127.0.0.1:1/")
			if mode == "Server" {
				startServe(t, dir)
			}
			for _, tt := range []struct {
				args   []string
				code   int
				stderr string
			}{
				{[]string{"cancel", unknown}, 1, "task " + unknown + " not found"},
				{[]string{"retry", unknown}, 1, "task " + unknown + " not found"},
				{[]string{"show", unknown}, 1, "task " + unknown + " not found"},
				{[]string{"wait", unknown}, 1, "task " + unknown + " not found"},
				{[]string{"retry", first}, 1, "retry " + first + `: its idempotency key "k" has ` +
					"been taken by task " + holder + " since it was cancelled"},
				{[]string{"cancel"}, 2, "cancel takes a task ID, or --state STATE for every task " +
					"in a state\n" + `Run "hookq --help" for usage.`},
				{[]string{"retry"}, 2, "retry takes a task ID, or --state STATE for every task in " +
					"a state\n" + `Run "hookq --help" for usage.`},
				{[]string{"retry", first, holder}, 2, "retry takes one task ID, not 2 arguments\n" +
					`Run "hookq --help" for usage.`},
				{[]string{"show"}, 2, "show takes a task ID\n" + `Run "hookq --help" for usage.`},
				{[]string{"add", "--from", "-", "--wait"}, 2, `--wait does not go with --from: ` +
					`pass the IDs it prints to "hookq wait"` + "\n" + `Run "hookq --help" for usage.`},
				{[]string{"add", "--from", "-", "--in", "1h"}, 2, `--in does not go with --from: ` +
					`set "run_at" in each task object` + "\n" + `Run "hookq --help" for usage.`},
			} {
				r := hookq(t, dir, tt.args...)
				if want := "hookq: " + tt.stderr + "\n"; r.code != tt.code || r.stderr != want {
					t.Errorf("hookq %v = exit %d, stderr %q; want %d, %q",
						tt.args, r.code, r.stderr, tt.code, want)
				}
			}
			r := hookqIn(t, dir, "{}\n", "add", "--from", "-")
			want := "hookq: line 1: url is required\n" +
				"hookq: invalid task: 1 of 1 task is invalid; nothing was added\n"
			if r.code != 2 || r.stderr != want {
				t.Errorf("add --from of one bad line = exit %d, stderr %q; want 2, %q", r.code, r.stderr, want)
			}
		})
	}
}
