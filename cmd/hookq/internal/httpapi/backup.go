package httpapi

import (
	"io"
	"log/slog"
	"net/http"
)

// backup serves GET /v1/backup: a consistent copy of the store file,
// streamed as it is read. A failure after the first byte cannot change the
// status any more; it cuts the stream short, which the client sees as a
// truncated chunked body.
func (h *handler) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="hookq.db"`)
	cw := &countingWriter{w: w}
	if _, err := h.q.Backup(r.Context(), cw); err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			h.fail(w, r, err)
			return
		}
		h.log.Warn("backup cut short", slog.Int64("bytes", cw.n), slog.Any(keyError, err))
		panic(http.ErrAbortHandler) // abort the stream so the client sees an error
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// CheckReport is the reply of GET /v1/check.
type CheckReport struct {
	// OK is true when no problem was found.
	OK bool `json:"ok"`
	// Problems lists what is wrong, one sentence each.
	Problems []string `json:"problems"`
	// Seconds is how long the check took, as the client measured it.
	Seconds float64 `json:"seconds,omitempty"`
}

// NewCheckReport returns the report of a check that found problems.
func NewCheckReport(problems []error) *CheckReport {
	r := &CheckReport{OK: len(problems) == 0, Problems: []string{}}
	for _, p := range problems {
		r.Problems = append(r.Problems, p.Error())
	}
	return r
}

// check serves GET /v1/check: the store checked in one read transaction.
// A store with problems is still a 200: the report says what is wrong.
func (h *handler) check(w http.ResponseWriter, r *http.Request) {
	problems, err := h.q.Check(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(problems) > 0 {
		h.log.Error("store check found problems", slog.Int("problems", len(problems)),
			slog.Any(keyError, problems[0]))
	}
	writeJSON(w, http.StatusOK, NewCheckReport(problems))
}
