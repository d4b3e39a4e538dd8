package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// hookqServe is hookq as a server: `hookq serve` with its default flags,
// fed through its HTTP API.
type hookqServe struct {
	e      *env
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	dir    string
	runs   int
	client *http.Client
	// future, when set, delays the tasks enqueued so that the server's
	// workers leave them alone while enqueue alone is measured.
	future *time.Time
}

func (h *hookqServe) durability() string {
	return "fsync every commit (group commit)"
}

func (h *hookqServe) start(_ context.Context, e *env) error {
	h.e = e
	if _, err := os.Stat(e.hookqBin); err != nil {
		return fmt.Errorf("hookq binary: %w", err)
	}
	h.client = newClient(producers)
	return nil
}

func (h *hookqServe) stop() error {
	if h.cmd == nil {
		return nil
	}
	err := stopProcess(h.cmd, syscall.SIGTERM, 30*time.Second)
	h.cmd = nil
	return err
}

func (h *hookqServe) servers() []int {
	if h.cmd == nil {
		return nil
	}
	return []int{h.cmd.Process.Pid}
}

func (h *hookqServe) dirs() []string { return []string{h.dir} }

// reset starts a server over a new data directory. With workers off, the
// tasks enqueued are due in an hour, so that the server stores them and
// leaves them alone.
func (h *hookqServe) reset(ctx context.Context, workers bool) error {
	if err := h.stop(); err != nil {
		return err
	}
	if h.dir != "" {
		if err := os.RemoveAll(h.dir); err != nil {
			return err
		}
	}
	h.future = nil
	if !workers {
		t := time.Now().Add(time.Hour).UTC()
		h.future = &t
	}
	h.runs++
	h.dir = filepath.Join(h.e.dir, fmt.Sprintf("data-%d", h.runs))
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	log, err := os.Create(filepath.Join(h.e.dir, fmt.Sprintf("serve-%d.log", h.runs)))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(h.e.hookqBin, "serve", "--data", h.dir, "--listen", addr)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = cleanEnv("HOOKQ_")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start hookq serve: %w", err)
	}
	h.cmd = cmd
	h.base = "http://" + addr
	return waitReady(ctx, 30*time.Second, func() error {
		resp, err := h.client.Get(h.base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
}

// taskJSON is a task object of the API, as the bench sends it.
type taskJSON struct {
	URL   string         `json:"url"`
	Args  map[string]int `json:"args"`
	RunAt *time.Time     `json:"run_at,omitempty"`
}

func (h *hookqServe) task(i int) taskJSON {
	x, y := operands(i)
	return taskJSON{URL: h.e.url, Args: map[string]int{"x": x, "y": y}, RunAt: h.future}
}

// call sends a request to the API and decodes a 2xx reply into out.
func (h *hookqServe) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func (h *hookqServe) enqueue(ctx context.Context, i int) error {
	return h.call(ctx, "POST", "/v1/tasks", h.task(i), nil)
}

func (h *hookqServe) enqueueBatch(ctx context.Context, from, to int) error {
	tasks := make([]taskJSON, 0, to-from)
	for i := from; i < to; i++ {
		tasks = append(tasks, h.task(i))
	}
	return h.call(ctx, "POST", "/v1/tasks/batch", tasks, nil)
}

// run enqueues in batches, then polls the server's stats every 10 ms
// until every task succeeded.
func (h *hookqServe) run(ctx context.Context, n int) error {
	for from := 0; from < n; from += batchSize {
		if err := h.enqueueBatch(ctx, from, min(from+batchSize, n)); err != nil {
			return err
		}
	}
	for {
		var st struct {
			Counts map[string]int64 `json:"counts"`
		}
		if err := h.call(ctx, "GET", "/v1/stats", nil, &st); err != nil {
			return err
		}
		if st.Counts["succeeded"] == int64(n) {
			return nil
		}
		if f := st.Counts["failed"]; f > 0 {
			return fmt.Errorf("%d tasks failed", f)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d succeeded: %w", st.Counts["succeeded"], n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// latency enqueues one task at a time and long-polls its result.
func (h *hookqServe) latency(ctx context.Context, count int, budget time.Duration) ([]time.Duration, error) {
	if err := h.reset(ctx, true); err != nil {
		return nil, err
	}
	return sequentialLatency(ctx, count, budget, func(ctx context.Context, i int) error {
		var t struct {
			ID    string `json:"id"`
			State string `json:"state"`
		}
		if err := h.call(ctx, "POST", "/v1/tasks", h.task(i), &t); err != nil {
			return err
		}
		if err := h.call(ctx, "GET", "/v1/tasks/"+t.ID+"/wait?timeout=30s", nil, &t); err != nil {
			return err
		}
		if t.State != "succeeded" {
			return fmt.Errorf("task %d ended %s", i, t.State)
		}
		return nil
	})
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady calls check until it succeeds, ctx ends or within passes.
func waitReady(ctx context.Context, within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not ready within %s: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopProcess sends sig to cmd's process and waits for it to exit, killing
// it after grace.
func stopProcess(cmd *exec.Cmd, sig syscall.Signal, grace time.Duration) error {
	_ = cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
			return fmt.Errorf("%s exited: %w", filepath.Base(cmd.Path), err)
		}
		return nil
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within %s; killed", filepath.Base(cmd.Path), grace)
	}
}

// cleanEnv returns this process's environment without the variables whose
// names start with prefix.
func cleanEnv(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if len(kv) >= len(prefix) && kv[:len(prefix)] == prefix {
			continue
		}
		out = append(out, kv)
	}
	return out
}
