package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Run is a whole run: the JSON output.
type Run struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Machine  map[string]string `json:"machine"`
	Settings map[string]string `json:"settings"`
	Results  []*Result         `json:"results"`
}

// machine describes the machine the run is on.
func machine() map[string]string {
	m := map[string]string{
		"cores": fmt.Sprint(runtime.NumCPU()),
		"go":    runtime.Version(),
		"os":    runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			m["memory"] = strings.Join(strings.Fields(line)[1:], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	m["load_at_start"] = loadAverage()
	return m
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// settings records the flags that change what is measured.
func settings(c *config) map[string]string {
	return map[string]string{
		"redis_fsync":   c.redisFsync,
		"sqlite_sync":   c.sqliteSync,
		"producers":     fmt.Sprint(producers),
		"batch_size":    fmt.Sprint(batchSize),
		"latency_tasks": fmt.Sprint(c.latTasks),
		"latency_time":  c.latBudget.String(),
		"phase_timeout": c.budget.String(),
	}
}

// printTable writes the run as a Markdown table: absolute figures, with
// the ratio to hookq (embedded, same task count) after each.
func printTable(w io.Writer, run *Run) {
	run.Machine["load_at_end"] = loadAverage()
	fmt.Fprintf(w, "\nMachine: %s cores, %s, %s, %s; load average %s at start, %s at end.\n\n",
		run.Machine["cores"], run.Machine["cpu"], run.Machine["memory"], run.Machine["go"],
		run.Machine["load_at_start"], run.Machine["load_at_end"])
	fmt.Fprintln(w, "| system | tasks | durability | enqueue 1 producer /s | enqueue 256 producers /s | "+
		"enqueue batch /s | end to end /s | idle latency p50 / p99 | peak RSS MB app + server | "+
		"disk B/task | CPU µs/task |")
	fmt.Fprintln(w, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")

	base := map[int]*Result{}
	for _, r := range run.Results {
		if r.System == "hookq" && r.Error == "" {
			base[r.N] = r
		}
	}
	var notes []string
	for _, r := range run.Results {
		b := base[r.N]
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | %d | %s | %s |  |  |  |  |  |  |  |\n",
				r.System, r.N, r.Durability, r.Error)
			continue
		}
		for phase, err := range r.PhaseErrors {
			notes = append(notes, fmt.Sprintf("%s, %d tasks, %s: %s", r.System, r.N, phase, err))
		}
		cells := []string{
			r.System, fmt.Sprint(r.N), r.Durability,
			rateCell(r.Sequential, pick(b, func(b *Result) *Rate { return b.Sequential }), r.failed("enqueue_sequential")),
			rateCell(r.Concurrent, pick(b, func(b *Result) *Rate { return b.Concurrent }), r.failed("enqueue_256")),
			rateCell(r.Batch, pick(b, func(b *Result) *Rate { return b.Batch }), r.failed("enqueue_batch")),
			rateCell(r.EndToEnd, pick(b, func(b *Result) *Rate { return b.EndToEnd }), r.failed("end_to_end")),
			latencyCell(r.Latency, r.failed("latency")),
			rssCell(r),
			numCell(r.DiskPerTask, baseNum(b, func(b *Result) float64 { return b.DiskPerTask }), "%.0f"),
			numCell(r.CPUPerTaskUS, baseNum(b, func(b *Result) float64 { return b.CPUPerTaskUS }), "%.0f"),
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}

	// hookq with a store full of pending tasks.
	first := true
	for _, r := range run.Results {
		if r.Pending == nil {
			continue
		}
		if first {
			fmt.Fprintln(w, "\n| hookq, store of pending tasks | reopen ms | stats ms | "+
				"first page of ls ms | RSS MB after: anon + file |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
			first = false
		}
		p := r.Pending
		fmt.Fprintf(w, "| %d pending | %.1f | %.2f | %.2f | %.0f + %.0f |\n",
			p.Tasks, p.ReopenMs, p.StatsMs, p.ListMs, p.AnonMB, p.FileMB)
	}
	if len(notes) > 0 {
		slices.Sort(notes)
		fmt.Fprintln(w, "\nErrors:")
		for _, n := range notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
	fmt.Fprintln(w)
}

// failed reports whether phase failed.
func (r *Result) failed(phase string) bool {
	_, ok := r.PhaseErrors[phase]
	return ok
}

func pick(b *Result, f func(*Result) *Rate) *Rate {
	if b == nil {
		return nil
	}
	return f(b)
}

func baseNum(b *Result, f func(*Result) float64) float64 {
	if b == nil {
		return 0
	}
	return f(b)
}

// rateCell formats a rate and its ratio to hookq's.
func rateCell(r, base *Rate, failed bool) string {
	switch {
	case failed:
		return "error"
	case r == nil:
		return "—"
	}
	s := human(r.PerSecond)
	if base != nil && base.PerSecond > 0 {
		s += fmt.Sprintf(" (%s)", ratio(r.PerSecond/base.PerSecond))
	}
	return s
}

// numCell formats a figure where less is better, with its ratio to
// hookq's.
func numCell(v, base float64, format string) string {
	if v <= 0 {
		return "—"
	}
	s := fmt.Sprintf(format, v)
	if base > 0 {
		s += fmt.Sprintf(" (%s)", ratio(v/base))
	}
	return s
}

func latencyCell(l *Latency, failed bool) string {
	switch {
	case failed && l == nil:
		return "error"
	case l == nil:
		return "—"
	}
	s := fmt.Sprintf("%s / %s ms", msString(l.P50ms), msString(l.P99ms))
	if l.Count < 1000 {
		s += fmt.Sprintf(" (%d tasks)", l.Count)
	}
	return s
}

func rssCell(r *Result) string {
	if r.AppRSSMB == 0 && r.ServerRSSMB == 0 {
		return "—"
	}
	if r.ServerRSSMB == 0 {
		return fmt.Sprintf("%.0f", r.AppRSSMB)
	}
	return fmt.Sprintf("%.0f + %.0f", r.AppRSSMB, r.ServerRSSMB)
}

// human formats a rate: 950, 12.3k, 1.25M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("×%.0f", v)
	}
	if v >= 0.1 {
		return fmt.Sprintf("×%.2f", v)
	}
	return fmt.Sprintf("×%.3f", v)
}

func msString(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	if v >= 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
