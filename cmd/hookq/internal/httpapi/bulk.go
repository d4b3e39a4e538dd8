package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hookq/hookq/queue"
)

// BatchReply is the reply of POST /v1/tasks/batch.
type BatchReply struct {
	// Tasks are the tasks in the order of the request: each the new task,
	// or the kept task whose idempotency key its spec matched.
	Tasks []*queue.Task `json:"tasks"`
	// Existing lists the indexes, in Tasks, of the tasks that a key
	// matched rather than stored anew.
	Existing []int `json:"existing"`
}

// enqueueBatch serves POST /v1/tasks/batch: a JSON array of up to
// MaxBatchTasks task objects, stored in one commit, all or none. It
// answers 201 with a BatchReply (200 when every spec matched a kept task).
func (h *handler) enqueueBatch(w http.ResponseWriter, r *http.Request) {
	if !isJSON(w, r) {
		return
	}
	// One batch is read and stored at a time; the others wait their turn
	// (or until their client gives up), which bounds the memory they take.
	select {
	case h.batches <- struct{}{}:
		defer func() { <-h.batches }()
	case <-r.Context().Done():
		h.fail(w, r, r.Context().Err())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBatchBodyBytes)
	specs, err := decodeSpecs(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
			fmt.Sprintf("request body is over the limit of %d bytes", MaxBatchBodyBytes))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, CodeInvalid, err.Error())
		return
	case len(specs) > MaxBatchTasks:
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
			fmt.Sprintf("%d tasks is over the limit of %d per batch", len(specs), MaxBatchTasks))
		return
	}

	tasks, err := h.q.EnqueueMany(r.Context(), specs)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	reply := BatchReply{Tasks: tasks, Existing: []int{}}
	if reply.Tasks == nil {
		reply.Tasks = []*queue.Task{}
	}
	for i, t := range tasks {
		if t.Existing {
			reply.Existing = append(reply.Existing, i)
		}
	}
	status := http.StatusCreated
	if len(reply.Existing) == len(tasks) {
		status = http.StatusOK
	}
	writeJSON(w, status, reply)
}

// decodeSpecs reads a JSON array of task objects as decodeSpec reads one.
func decodeSpecs(body io.Reader) ([]queue.Spec, error) {
	var specs []queue.Spec
	dec := json.NewDecoder(body)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&specs); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("decode tasks: empty body")
		}
		return nil, fmt.Errorf("decode tasks: %w", DecodeError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, errors.New("decode tasks: data after the array")
	}
	return specs, nil
}

// CountReply is the reply of the bulk routes: how many tasks were
// changed. Only the field of the route's action is set.
type CountReply struct {
	Retried   *int `json:"retried,omitempty"`
	Cancelled *int `json:"cancelled,omitempty"`
	Deleted   *int `json:"deleted,omitempty"`
}

// retryAll serves POST /v1/tasks/retry?state=S: it retries every task in
// the final state S and answers {"retried": N}.
func (h *handler) retryAll(w http.ResponseWriter, r *http.Request) {
	st, ok := stateParam(w, r, true)
	if !ok {
		return
	}
	n, err := h.q.RetryAll(r.Context(), st)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CountReply{Retried: &n})
}

// cancelAll serves POST /v1/tasks/cancel?state=S: it cancels every task
// in the state S, which is not final, and answers {"cancelled": N}.
func (h *handler) cancelAll(w http.ResponseWriter, r *http.Request) {
	st, ok := stateParam(w, r, true)
	if !ok {
		return
	}
	n, err := h.q.CancelAll(r.Context(), st)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CountReply{Cancelled: &n})
}

// purge serves POST /v1/tasks/purge?older_than=DUR&state=S: it deletes
// the final tasks (in state S, if given) that finished more than DUR ago
// and answers {"deleted": N}.
func (h *handler) purge(w http.ResponseWriter, r *http.Request) {
	st, ok := stateParam(w, r, false)
	if !ok {
		return
	}
	s := r.URL.Query().Get("older_than")
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		writeError(w, http.StatusBadRequest, CodeInvalid,
			fmt.Sprintf("older_than %q is not a duration such as 24h", s))
		return
	}
	n, err := h.q.Purge(r.Context(), d, st)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, CountReply{Deleted: &n})
}

// stateParam parses the request's state parameter, answering 400 when it
// is malformed, or missing while required. Zero means none was given.
func stateParam(w http.ResponseWriter, r *http.Request, required bool) (queue.State, bool) {
	s := r.URL.Query().Get("state")
	if s == "" {
		if required {
			writeError(w, http.StatusBadRequest, CodeInvalid, "state is required")
			return 0, false
		}
		return 0, true
	}
	st, err := queue.ParseState(s)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalid, err.Error())
		return 0, false
	}
	return st, true
}
