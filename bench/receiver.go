package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The receiver is the endpoint every system calls: Celery's multiply
// task, GET /multiply?x=..&y=.. answering {"status":"success","retval":x*y}.
// It runs in a process of its own (this binary, started with -receiver),
// so that its CPU and memory are charged to no system.

// runReceiver serves /multiply on addr until the process is killed. It
// prints the address it listens on as its first line of output.
func runReceiver(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("receiver: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /multiply", multiply)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Println(ln.Addr().String())
	return srv.Serve(ln)
}

// multiply answers the multiply task; bad arguments answer a failure, as
// the Celery protocol has it.
func multiply(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	x, errX := strconv.ParseInt(q.Get("x"), 10, 64)
	y, errY := strconv.ParseInt(q.Get("y"), 10, 64)
	w.Header().Set("Content-Type", "application/json")
	if err := errors.Join(errX, errY); err != nil {
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "failure", "reason": err.Error()})
		return
	}
	fmt.Fprintf(w, `{"status":"success","retval":%d}`+"\n", x*y)
}

// receiverProc is a running receiver process.
type receiverProc struct {
	cmd  *exec.Cmd
	addr string
}

// startReceiver starts this binary as a receiver on a free loopback port
// and returns once it listens.
func startReceiver() (*receiverProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start receiver: %w", err)
	}
	cmd := exec.Command(self, "-receiver", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start receiver: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start receiver: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start receiver: read its address: %w", err)
	}
	return &receiverProc{cmd: cmd, addr: strings.TrimSpace(line)}, nil
}

// stop kills the receiver and waits for it.
func (r *receiverProc) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// taskURL returns the URL every system calls, without its arguments.
func taskURL(addr string) string { return "http://" + addr + "/multiply" }

// operands returns the arguments of task i: x = i, y = 7.
func operands(i int) (x, y int) { return i, 7 }

// newClient returns the HTTP client the peers' job handlers and the HTTP
// baseline use. Its settings follow hookq's dispatcher: pooled keep-alive
// connections, as many per host as there are workers, no proxy, one 15 s
// deadline per call.
func newClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: workers,
			MaxConnsPerHost:     workers,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// callMultiply makes task i's call to the receiver, as a job handler of a
// peer does, and returns the retval as JSON.
func callMultiply(ctx context.Context, c *http.Client, url string, i int) (json.RawMessage, error) {
	x, y := operands(i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		url+"?x="+strconv.Itoa(x)+"&y="+strconv.Itoa(y), nil)
	if err != nil {
		return nil, fmt.Errorf("multiply %d: %w", i, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("multiply %d: %w", i, err)
	}
	defer resp.Body.Close()
	var reply struct {
		Status string          `json:"status"`
		Retval json.RawMessage `json:"retval"`
		Reason string          `json:"reason"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reply)
	if err != nil {
		return nil, fmt.Errorf("multiply %d: read reply: %w", i, err)
	}
	if resp.StatusCode/100 != 2 || reply.Status != "success" {
		return nil, fmt.Errorf("multiply %d: %s %s %s", i, resp.Status, reply.Status, reply.Reason)
	}
	return reply.Retval, nil
}
