package httpapi

import "net/http"

// Option adds an optional part to the handler NewHandler returns.
type Option func(*handler)

// WithMetrics serves m on GET /metrics (Prometheus's text format, say).
func WithMetrics(m http.Handler) Option {
	return func(h *handler) { h.extra.Handle("GET /metrics", m) }
}
