// Package metrics exposes a hookq server to Prometheus. Counters and the
// attempt latency histogram are fed by the queue's observer callbacks
// (queue.Options.OnEnqueue and OnAttempt); the tasks per state and the age
// of the oldest pending task are read from queue.Stats when scraped, which
// reads counters kept in the store (no scan). The Go runtime and process
// collectors come along.
//
// The queue itself knows nothing of Prometheus: this package is the only
// one that imports it.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hookq/hookq/queue"
)

// Metric names, part of hookq's operator interface.
const (
	NameEnqueued      = "hookq_tasks_enqueued_total"
	NameFinished      = "hookq_tasks_finished_total"
	NameAttempts      = "hookq_attempts_total"
	NameDuration      = "hookq_attempt_duration_seconds"
	NameTasks         = "hookq_tasks"
	NameOldestPending = "hookq_oldest_pending_age_seconds"
	NameDropped       = "hookq_events_dropped_total"
	NameStoreErrors   = "hookq_outcome_store_errors_total"
	NameBuildInfo     = "hookq_build_info"
)

// durationBuckets are the upper bounds of the attempt latency histogram,
// in seconds: from a fast local endpoint up to past the default 15 s
// deadline.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60}

// Source is what the scrape reads of a queue. *queue.Queue provides it.
type Source interface {
	// Stats returns the queue's counts per state and oldest pending task.
	Stats(ctx context.Context) (*queue.Stats, error)
	// DroppedEvents returns the events the observers missed.
	DroppedEvents() uint64
}

// Metrics is a registry of hookq's metrics. Its methods are safe for
// concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	log      *slog.Logger
	enqueued prometheus.Counter
	finished *prometheus.CounterVec
	attempts *prometheus.CounterVec
	duration prometheus.Histogram
	storeErr prometheus.Counter
}

// New returns the metrics of a hookq server of the given version, with
// the Go and process collectors. A nil logger logs nothing.
func New(version string, logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: logger,
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameEnqueued,
			Help: "Tasks stored by enqueues (not counting those an idempotency key matched).",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameFinished,
			Help: "Tasks that an attempt finished, by outcome: succeeded or failed.",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameAttempts,
			Help: "Attempts whose outcome was reached, by class: the reply's status class " +
				"(2xx, 3xx, 4xx, 5xx) or, when no reply came, the error kind " +
				"(transport, timeout, refused, too_large, cancelled).",
		}, []string{"class"}),
		storeErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameStoreErrors,
			Help: "Attempts whose outcome could not be stored (a full disk, say): their " +
				"tasks run again, and dispatch pauses until the store takes writes.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    NameDuration,
			Help:    "How long attempts took, from sending the request to reading the reply.",
			Buckets: durationBuckets,
		}),
	}
	for _, o := range []queue.Outcome{queue.OutcomeSucceeded, queue.OutcomeFailed} {
		m.finished.WithLabelValues(string(o))
	}
	for _, c := range []string{"2xx", "4xx", "5xx", "transport", "timeout"} {
		m.attempts.WithLabelValues(c)
	}
	m.reg.MustRegister(m.enqueued, m.finished, m.attempts, m.duration, m.storeErr,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        NameBuildInfo,
			Help:        "Always 1; its version label is the running hookq's version.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }))
	return m
}

// OnEnqueue counts an enqueue. Pass it as queue.Options.OnEnqueue.
func (m *Metrics) OnEnqueue(e queue.EnqueueEvent) {
	m.enqueued.Add(float64(e.Tasks))
}

// OnAttempt counts an attempt and the task it finished. Pass it as
// queue.Options.OnAttempt.
func (m *Metrics) OnAttempt(e queue.AttemptEvent) {
	m.attempts.WithLabelValues(Class(e)).Inc()
	m.duration.Observe(e.Duration.Seconds())
	switch e.Outcome {
	case queue.OutcomeSucceeded, queue.OutcomeFailed:
		m.finished.WithLabelValues(string(e.Outcome)).Inc()
	case queue.OutcomeStoreError:
		m.storeErr.Inc()
	}
}

// errorClasses are the error kinds that name an attempt's class when no
// reply came; any other is "other", so the label's values stay few.
var errorClasses = map[string]bool{
	"transport": true, "timeout": true, "refused": true, "too_large": true, "cancelled": true,
}

// Class returns the class of an attempt for NameAttempts: "2xx" to "5xx"
// by the reply's status, else the kind of its error, else "other".
func Class(e queue.AttemptEvent) string {
	switch {
	case e.StatusCode >= 100 && e.StatusCode <= 599:
		return strconv.Itoa(e.StatusCode/100) + "xx"
	case e.Error != nil && errorClasses[e.Error.Kind]:
		return e.Error.Kind
	default:
		return "other"
	}
}

// Watch adds the gauges read from src at each scrape: NameTasks by
// state, NameOldestPending and NameDropped. Call it once, when the queue
// is open.
func (m *Metrics) Watch(src Source) {
	m.reg.MustRegister(&scrape{src: src, log: m.log})
}

// Handler returns the handler that serves the metrics in Prometheus's
// text format. A failure to read the queue's stats is logged and leaves
// its gauges out of that scrape; the other metrics are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	})
}

// scrape collects the gauges of a queue's stats when scraped.
type scrape struct {
	src Source
	log *slog.Logger
}

var (
	descTasks = prometheus.NewDesc(NameTasks,
		"Tasks kept, by state (active: held by a worker now).", []string{"state"}, nil)
	descOldest = prometheus.NewDesc(NameOldestPending,
		"How long the task that has waited longest to run has been due; 0 when none waits.", nil, nil)
	descDropped = prometheus.NewDesc(NameDropped,
		"Queue events that observers and the log missed because they fell behind; "+
			"the counters above undercount by as many.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTasks
	ch <- descOldest
	ch <- descDropped
}

// Collect implements prometheus.Collector.
func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue,
		float64(s.src.DroppedEvents()))
	st, err := s.src.Stats(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descTasks, err)
		return
	}
	for state, n := range st.Counts {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, st.OldestPendingAge)
}
