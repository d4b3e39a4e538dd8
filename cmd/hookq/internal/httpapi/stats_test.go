package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

func TestHandler_StatsLastMinute(t *testing.T) {
	b := setup(t)
	recv := multiply(t)
	for _, args := range []string{`{"x":2,"y":3}`, `{"x":"two"}`} {
		task := b.task(t, "POST", "/v1/tasks", fmt.Sprintf(`{"url":%q,"args":%s}`, recv.URL, args),
			http.StatusCreated)
		b.task(t, "GET", "/v1/tasks/"+task.ID.String()+"/wait", "", http.StatusOK)
	}

	status, data := b.call(t, "GET", "/v1/stats", "")
	var s struct {
		Age        *float64 `json:"oldest_pending_age_seconds"`
		LastMinute struct {
			Seconds        int     `json:"seconds"`
			Succeeded      int64   `json:"succeeded"`
			Failed         int64   `json:"failed"`
			Attempts       int64   `json:"attempts"`
			FailedAttempts int64   `json:"failed_attempts"`
			ErrorRate      float64 `json:"error_rate"`
			Finished       float64 `json:"finished_per_second"`
		} `json:"last_minute"`
	}
	if err := json.Unmarshal(data, &s); err != nil || status != http.StatusOK {
		t.Fatalf("stats = %d %s (%v)", status, data, err)
	}
	w := s.LastMinute
	if s.Age == nil || *s.Age != 0 || w.Seconds != 60 || w.Succeeded != 1 || w.Failed != 1 ||
		w.Attempts != 2 || w.FailedAttempts != 1 || w.ErrorRate != 0.5 || w.Finished != 2.0/60 {
		t.Errorf("stats = %s; want one success and one failure in the last minute", data)
	}
}
