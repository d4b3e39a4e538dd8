package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookq/hookq/queue"
)

// maxReplyBytes bounds a reply the client reads; a list of 10,000 tasks
// fits well within it.
const maxReplyBytes = 256 << 20

// Client speaks hookq's HTTP API. Its methods mirror those of queue.Queue
// and return the same types; error replies come back as *Error, which
// unwraps to the matching queue sentinel error (queue.ErrNotFound, ...).
// A Client is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the server at baseURL, such as
// "http://127.0.0.1:7700". A nil hc means a client of its own that uses no
// proxy. Requests have no overall timeout: bound them with their context.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// NewUnixClient returns a client of the server listening on the unix
// socket at path.
func NewUnixClient(path string) *Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	// The host is a placeholder: every connection goes to the socket.
	return &Client{base: "http://" + SocketHost, hc: &http.Client{Transport: tr}}
}

// Close releases the client's idle connections. It always returns nil.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Enqueue enqueues one task and returns it: the new task, or the one kept
// under the spec's idempotency key.
func (c *Client) Enqueue(ctx context.Context, spec queue.Spec) (*queue.Task, error) {
	body, err := encode(spec)
	if err != nil {
		return nil, fmt.Errorf("enqueue: encode task: %w", err)
	}
	if len(body) > MaxBodyBytes {
		// A valid task can take more than POST /v1/tasks does (a JSON
		// body and arguments of 1 MiB each, say): send it as a batch of
		// one, whose limit is larger, so that every task a queue takes
		// can be sent.
		tasks, err := c.EnqueueMany(ctx, []queue.Spec{spec})
		if err != nil {
			return nil, err
		}
		return tasks[0], nil
	}
	var t queue.Task
	status, err := c.doStatus(ctx, http.MethodPost, "/v1/tasks", body, &t)
	if err != nil {
		return nil, err
	}
	t.Existing = status == http.StatusOK // an idempotency key matched it
	return &t, nil
}

// EnqueueMany enqueues up to MaxBatchTasks tasks in one commit, all or
// none, and returns them in the order of specs; a task that an
// idempotency key matched has Existing set. The encoded specs must fit in
// MaxBatchBodyBytes.
func (c *Client) EnqueueMany(ctx context.Context, specs []queue.Spec) ([]*queue.Task, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	body, err := encode(specs)
	if err != nil {
		return nil, fmt.Errorf("enqueue batch: encode tasks: %w", err)
	}
	var reply BatchReply
	if err := c.do(ctx, http.MethodPost, "/v1/tasks/batch", body, &reply); err != nil {
		return nil, err
	}
	if len(reply.Tasks) != len(specs) {
		return nil, fmt.Errorf("enqueue batch: %d tasks in the reply to %d", len(reply.Tasks),
			len(specs))
	}
	for _, i := range reply.Existing {
		if i >= 0 && i < len(reply.Tasks) {
			reply.Tasks[i].Existing = true
		}
	}
	return reply.Tasks, nil
}

// encode returns the JSON of tasks to send. <, > and & are sent as they
// are, not escaped as json.Marshal does: the server measures and stores a
// task's JSON body as it receives it, which must be as the caller gave it.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// RetryAll retries every task in the final state st and returns how many.
func (c *Client) RetryAll(ctx context.Context, st queue.State) (int, error) {
	var reply CountReply
	err := c.do(ctx, http.MethodPost, "/v1/tasks/retry?state="+st.String(), []byte{}, &reply)
	return count(reply.Retried, err)
}

// CancelAll cancels every task in the state st and returns how many.
func (c *Client) CancelAll(ctx context.Context, st queue.State) (int, error) {
	var reply CountReply
	err := c.do(ctx, http.MethodPost, "/v1/tasks/cancel?state="+st.String(), []byte{}, &reply)
	return count(reply.Cancelled, err)
}

// Purge deletes the final tasks (in state st, or any final state when st
// is zero) that finished more than olderThan ago, and returns how many.
func (c *Client) Purge(ctx context.Context, olderThan time.Duration, st queue.State) (int, error) {
	query := url.Values{"older_than": {olderThan.String()}}
	if st != 0 {
		query.Set("state", st.String())
	}
	var reply CountReply
	err := c.do(ctx, http.MethodPost, "/v1/tasks/purge?"+query.Encode(), []byte{}, &reply)
	return count(reply.Deleted, err)
}

// count returns the count of a bulk reply.
func count(n *int, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	if n == nil {
		return 0, errors.New("bulk reply without a count")
	}
	return *n, nil
}

// Get returns the task with the given ID.
func (c *Client) Get(ctx context.Context, id queue.ID) (*queue.Task, error) {
	var t queue.Task
	if err := c.do(ctx, http.MethodGet, "/v1/tasks/"+id.String(), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Attempts returns the attempts of the task with the given ID, oldest
// first.
func (c *Client) Attempts(ctx context.Context, id queue.ID) ([]queue.Attempt, error) {
	var atts []queue.Attempt
	err := c.do(ctx, http.MethodGet, "/v1/tasks/"+id.String()+"/attempts", nil, &atts)
	return atts, err
}

// List returns tasks newest first, selected by opts as queue.Queue.List
// does (a zero Limit means the server's default).
func (c *Client) List(ctx context.Context, opts queue.ListOptions) ([]*queue.Task, error) {
	query := url.Values{}
	if opts.State != 0 {
		query.Set("state", opts.State.String())
	}
	if opts.Limit > 0 {
		query.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Before != nil {
		query.Set("before", opts.Before.String())
	}
	if opts.URL != "" {
		query.Set("url", opts.URL)
	}
	path := "/v1/tasks"
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var tasks []*queue.Task
	err := c.do(ctx, http.MethodGet, path, nil, &tasks)
	return tasks, err
}

// Retry makes a final task pending again.
func (c *Client) Retry(ctx context.Context, id queue.ID) (*queue.Task, error) {
	var t queue.Task
	if err := c.do(ctx, http.MethodPost, "/v1/tasks/"+id.String()+"/retry", nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Cancel cancels a task that has not finished.
func (c *Client) Cancel(ctx context.Context, id queue.ID) (*queue.Task, error) {
	var t queue.Task
	if err := c.do(ctx, http.MethodPost, "/v1/tasks/"+id.String()+"/cancel", nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Stats returns the queue's counts per state.
func (c *Client) Stats(ctx context.Context) (*queue.Stats, error) {
	var s queue.Stats
	if err := c.do(ctx, http.MethodGet, "/v1/stats", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Poll makes one long poll: it returns the task once it is final, or as it
// is after timeout (shortened by the server to MaxWait). The caller tells
// the two apart by the task's state.
func (c *Client) Poll(ctx context.Context, id queue.ID, timeout time.Duration) (*queue.Task, error) {
	var t queue.Task
	path := "/v1/tasks/" + id.String() + "/wait?timeout=" + url.QueryEscape(timeout.String())
	if err := c.do(ctx, http.MethodGet, path, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Wait blocks until the task is final and returns it, polling the server
// with long polls of DefaultWait. It fails when ctx is done.
func (c *Client) Wait(ctx context.Context, id queue.ID) (*queue.Task, error) {
	for {
		t, err := c.Poll(ctx, id, DefaultWait)
		if err != nil {
			return nil, err
		}
		if t.State.Final() {
			return t, nil
		}
	}
}

// Health reports whether the server's store answers: nil if it does.
func (c *Client) Health(ctx context.Context) error {
	var out map[string]string
	return c.do(ctx, http.MethodGet, "/healthz", nil, &out)
}

// do sends one request and decodes a 2xx reply into out, or an error reply
// into an *Error.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	_, err := c.doStatus(ctx, method, path, body, out)
	return err
}

// doStatus is do that also returns the reply's status.
func (c *Client) doStatus(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	op := method + " " + strings.SplitN(path, "?", 2)[0]
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return 0, fmt.Errorf("%s: read reply: %w", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, replyError(op, resp.Status, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return 0, fmt.Errorf("%s: decode reply: %w", op, err)
	}
	return resp.StatusCode, nil
}

// replyError turns an error reply into an *Error.
func replyError(op, status string, code int, data []byte) error {
	var er errorReply
	if json.Unmarshal(data, &er) != nil || er.Error == "" {
		er.Error = fmt.Sprintf("%s: %s", op, status)
	}
	return &Error{StatusCode: code, Code: er.Code, Message: er.Error}
}

// Backup streams a consistent copy of the server's store to w and returns
// the bytes written. A copy cut short by the server fails with an error;
// verify a copy before trusting it all the same.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	const op = "GET /v1/backup"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/backup", nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, replyError(op, resp.Status, resp.StatusCode, data)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("%s: read copy: %w", op, err)
	}
	return n, nil
}

// Check asks the server to verify its store and returns the report.
func (c *Client) Check(ctx context.Context) (*CheckReport, error) {
	var rep CheckReport
	if err := c.do(ctx, http.MethodGet, "/v1/check", nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
