package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/hookq/hookq/queue"
)

// Celery task state names, as Celery's HTTP views report them.
const (
	celeryPending = "PENDING"
	celeryStarted = "STARTED"
	celeryRetry   = "RETRY"
	celerySuccess = "SUCCESS"
	celeryFailure = "FAILURE"
	celeryRevoked = "REVOKED"
)

// CeleryState returns Celery's name for a task state.
func CeleryState(s queue.State) string {
	switch s {
	case queue.Active:
		return celeryStarted
	case queue.Retrying:
		return celeryRetry
	case queue.Succeeded:
		return celerySuccess
	case queue.Failed:
		return celeryFailure
	case queue.Cancelled:
		return celeryRevoked
	default:
		return celeryPending
	}
}

// CeleryStatus is the reply of GET /{id}/status.
type CeleryStatus struct {
	Task struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		// Result is the endpoint's retval on success, the error message
		// (a JSON string) on failure, and null otherwise.
		Result json.RawMessage `json:"result"`
	} `json:"task"`
}

// CeleryDone is the reply of GET /{id}/done.
type CeleryDone struct {
	Task struct {
		ID string `json:"id"`
		// Executed reports whether the task is final.
		Executed bool `json:"executed"`
	} `json:"task"`
}

// celeryStatus serves GET /{id}/status, Celery's task status view.
func (h *handler) celeryStatus(w http.ResponseWriter, r *http.Request) {
	t, ok := h.onTask(w, r, h.q.Get)
	if !ok {
		return
	}

	var out CeleryStatus
	out.Task.ID = t.ID.String()
	out.Task.Status = CeleryState(t.State)
	out.Task.Result = json.RawMessage("null")
	switch {
	case t.State == queue.Succeeded && len(t.Result) > 0:
		out.Task.Result = t.Result
	case t.State == queue.Failed && t.Error != nil:
		msg, _ := json.Marshal(t.Error.Message)
		out.Task.Result = msg
	}
	writeJSON(w, http.StatusOK, out)
}

// celeryDone serves GET /{id}/done, Celery's "is it executed" view.
func (h *handler) celeryDone(w http.ResponseWriter, r *http.Request) {
	t, ok := h.onTask(w, r, h.q.Get)
	if !ok {
		return
	}
	var out CeleryDone
	out.Task.ID = t.ID.String()
	out.Task.Executed = t.State.Final()
	writeJSON(w, http.StatusOK, out)
}
