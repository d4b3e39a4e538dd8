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
