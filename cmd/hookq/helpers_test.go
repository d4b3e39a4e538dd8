package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// hookqBin is the hookq binary under test, built once by TestMain.
var hookqBin string

// testVersion is the version the binary under test is built with.
const testVersion = "v0.0.0-test"

// patience bounds every wait of these tests; they end much sooner when
// all is well.
const patience = 20 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookq-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		os.Exit(1)
	}
	hookqBin = filepath.Join(dir, "hookq")
	build := exec.Command("go", "build", "-o", hookqBin,
		"-ldflags", "-X main.version="+testVersion, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build hookq: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// Every goroutine a test started (process watchers, receivers)
		// must be gone.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what one run of hookq printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// command returns a hookq command on the data directory dir, with no
// HOOKQ_DATA from the environment.
func command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(hookqBin, append([]string{"--data", dir}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envData+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.WaitDelay = time.Second
	return cmd
}

// hookq runs hookq to completion on the data directory dir.
func hookq(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return hookqIn(t, dir, "", args...)
}

// hookqIn runs hookq with stdin as its standard input.
func hookqIn(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	cmd := command(dir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hookq: %v", err)
	}
	timer := time.AfterFunc(patience, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run hookq %v: %v", args, err)
	}
	return r
}

// mustRun runs hookq and fails the test unless it exits 0.
func mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := hookq(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("hookq %s = exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "),
			r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// process is a hookq process running in the background, with its stderr
// watched line by line.
type process struct {
	cmd    *exec.Cmd
	stdout strings.Builder // read only after done is closed
	log    *lineWatch
	done   chan struct{} // closed when the process has exited
	code   int           // exit code, set before done is closed
}

// start starts hookq in the background; the test's cleanup kills it if
// it is still running.
func start(t *testing.T, dir string, args ...string) *process {
	t.Helper()
	return startCmd(t, command(dir, args...), args)
}

// startCmd starts cmd, a hookq command, in the background; the test's
// cleanup kills it if it is still running.
func startCmd(t *testing.T, cmd *exec.Cmd, args []string) *process {
	t.Helper()
	p := &process{cmd: cmd, log: newLineWatch(), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr pipe: %v", err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start hookq: %v", err)
	}
	go func() {
		defer close(p.done)
		p.log.read(stderr)
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("stderr of hookq %v:\n%s", args, p.log.String())
		}
	})
	return p
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal hookq: %v", err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(patience):
		t.Fatalf("hookq did not exit; its stderr:\n%s", p.log.String())
		return -1
	}
}

// server is a running "hookq serve".
type server struct {
	*process
	addr string // the HTTP API's TCP address
}

// listenRE finds the TCP address in the server's "serving" log line.
var listenRE = regexp.MustCompile(`msg=serving listen=(\S+)`)

// startServe starts "hookq serve" on dir with any free port and waits until
// it serves.
func startServe(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	return serving(t, start(t, dir, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...))
}

// serving waits until p, a hookq serve, serves and returns it as a server.
func serving(t *testing.T, p *process) *server {
	t.Helper()
	line := p.log.waitFor(t, "msg=serving", p.done)
	m := listenRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	return &server{process: p, addr: m[1]}
}

// stop sends SIGTERM to the server and returns its exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.signal(t, syscall.SIGTERM)
	return s.wait(t)
}

// lineWatch collects lines and lets a test wait for one.
type lineWatch struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced when a line comes
}

func newLineWatch() *lineWatch {
	return &lineWatch{changed: make(chan struct{})}
}

// read collects the lines of r until it ends.
func (w *lineWatch) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		w.mu.Lock()
		w.lines = append(w.lines, sc.Text())
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// waitFor returns the first line containing substr, waiting for it until
// done is closed or patience runs out.
func (w *lineWatch) waitFor(t *testing.T, substr string, done <-chan struct{}) string {
	t.Helper()
	deadline := time.After(patience)
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if strings.Contains(l, substr) {
				w.mu.Unlock()
				return l
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-done:
			// The process exited: its last lines are in.
			if l, ok := w.find(substr); ok {
				return l
			}
			t.Fatalf("hookq exited without logging %q:\n%s", substr, w.String())
		case <-deadline:
			t.Fatalf("hookq did not log %q in %s:\n%s", substr, patience, w.String())
		}
	}
}

func (w *lineWatch) find(substr string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l, substr) {
			return l, true
		}
	}
	return "", false
}

// String returns all the lines so far.
func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// multiplyServer is a Celery endpoint answering x*y, or a failure.
func multiplyServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, errX := strconv.Atoi(r.FormValue("x"))
		y, errY := strconv.Atoi(r.FormValue("y"))
		if errX != nil || errY != nil {
			io.WriteString(w, `{"status":"failure","reason":"boom: x and y must be integers"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "retval": x * y})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// blockingServer is an endpoint that holds every request until the test
// ends, and signals each arrival.
func blockingServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	return srv, arrived
}

// idRE matches a task ID printed alone on a line.
var idRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}\n$`)

// addTask runs "hookq add" and returns the ID it printed.
func addTask(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out := mustRun(t, dir, append([]string{"add"}, args...)...)
	if !idRE.MatchString(out) {
		t.Fatalf("hookq add printed %q; want a task ID and a newline", out)
	}
	return strings.TrimSpace(out)
}

// showJSON runs "hookq show --json" and decodes its output.
func showJSON(t *testing.T, dir, id string) map[string]any {
	t.Helper()
	out := mustRun(t, dir, "show", "--json", id)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("show --json printed invalid JSON: %v\n%s", err, out)
	}
	return m
}
