package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one system measured at one task count: the row of the
// table and the object of the JSON output.
type Result struct {
	System     string `json:"system"`
	N          int    `json:"n"`
	Durability string `json:"durability"`
	// Error says why the system could not run at all.
	Error string `json:"error,omitempty"`
	// PhaseErrors says, by phase, why a figure is missing.
	PhaseErrors map[string]string `json:"phase_errors,omitempty"`

	Sequential *Rate    `json:"enqueue_sequential,omitempty"`
	Concurrent *Rate    `json:"enqueue_256,omitempty"`
	Batch      *Rate    `json:"enqueue_batch,omitempty"`
	EndToEnd   *Rate    `json:"end_to_end,omitempty"`
	Latency    *Latency `json:"latency,omitempty"`
	Pending    *Pending `json:"pending,omitempty"`

	// The remaining figures are of the end-to-end phase.

	// AppRSSMB is the peak resident set of the bench process that runs
	// the producers and, for embedded systems and the peers' workers,
	// the system itself.
	AppRSSMB float64 `json:"app_rss_mb,omitempty"`
	// ServerRSSMB is the peak resident set of the system's server
	// processes (for several processes, the peak of their summed PSS).
	ServerRSSMB float64 `json:"server_rss_mb,omitempty"`
	// DiskPerTask is the growth of the system's data directories over the
	// phase, divided by its tasks.
	DiskPerTask float64 `json:"disk_bytes_per_task,omitempty"`
	// CPUPerTaskUS is the CPU time of the bench process and the servers
	// over the phase, divided by its tasks, in microseconds.
	CPUPerTaskUS float64 `json:"cpu_us_per_task,omitempty"`
	// ReceiverCPUPerTaskUS is the receiver's CPU over the phase per task:
	// the same work for every system, so it is charged to none.
	ReceiverCPUPerTaskUS float64 `json:"receiver_cpu_us_per_task,omitempty"`
}

// Rate is one throughput figure.
type Rate struct {
	Tasks      int     `json:"tasks"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Latency is the idle latency from enqueue to stored result.
type Latency struct {
	Count int     `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// Pending is what a store of N pending tasks costs to reopen and read.
type Pending struct {
	Tasks    int     `json:"tasks"`
	ReopenMs float64 `json:"reopen_ms"`
	StatsMs  float64 `json:"stats_ms"`
	ListMs   float64 `json:"list_first_page_ms"`
	// RSSMB is the resident set after those reads: AnonMB of the
	// process's own memory and FileMB of the store's pages mapped in.
	RSSMB  float64 `json:"rss_mb"`
	AnonMB float64 `json:"rss_anon_mb"`
	FileMB float64 `json:"rss_file_mb"`
}

// Producers is the number of concurrent producers of the concurrent
// enqueue phase.
const producers = 256

// batchSize is the number of tasks per call of a batch API.
const batchSize = 1000

// phases configures one measurement of one system.
type phases struct {
	n            int
	seqTasks     int
	latencyTasks int
	budget       time.Duration // per phase
	latBudget    time.Duration
	cpuProfile   string // of the end-to-end phase, if set
	receiverPID  int
}

// measure runs every phase a system has and returns its figures. A phase
// that fails is recorded and the next one runs.
func measure(ctx context.Context, name string, s system, e *env, p phases) *Result {
	res := &Result{System: name, N: p.n, Durability: s.durability()}
	defer func() {
		if err := s.stop(); err != nil {
			res.fail("stop", err)
		}
	}()
	if err := s.start(ctx, e); err != nil {
		res.Error = "could not start: " + err.Error()
		return res
	}
	rs, _ := s.(resetter)
	reset := func(workers bool) error {
		if rs == nil {
			return nil
		}
		return rs.reset(ctx, workers)
	}

	// Enqueue alone, with the workers stopped: one producer, then 256,
	// then the batch API.
	if q, ok := s.(enqueuer); ok {
		progress("%s n=%d: enqueue, 1 producer", name, p.n)
		res.Sequential = res.phase(ctx, "enqueue_sequential", s, p, reset, p.seqTasks,
			func(ctx context.Context) error {
				for i := range p.seqTasks {
					if err := q.enqueue(ctx, i); err != nil {
						return err
					}
				}
				return nil
			})
	}
	if q := concurrentPath(s); q != nil {
		progress("%s n=%d: enqueue, %d producers", name, p.n, producers)
		res.Concurrent = res.phase(ctx, "enqueue_256", s, p, reset, p.n,
			func(ctx context.Context) error { return fanOut(ctx, p.n, producers, q) })
	}
	if b, ok := s.(batcher); ok {
		progress("%s n=%d: enqueue, batches of %d", name, p.n, batchSize)
		res.Batch = res.phase(ctx, "enqueue_batch", s, p, reset, p.n,
			func(ctx context.Context) error {
				for from := 0; from < p.n; from += batchSize {
					if err := b.enqueueBatch(ctx, from, min(from+batchSize, p.n)); err != nil {
						return err
					}
				}
				return nil
			})
		if pr, ok := s.(prober); ok && res.Batch != nil {
			pend, err := pr.probe(ctx)
			if err != nil {
				res.fail("pending", err)
			}
			res.Pending = pend
		}
	}

	// End to end, with the resources it took.
	if r, ok := s.(runner); ok {
		progress("%s n=%d: end to end", name, p.n)
		res.endToEnd(ctx, s, r, p, reset)
	}

	// Idle latency last: it resets the system to its default settings.
	if l, ok := s.(latencer); ok && p.latencyTasks > 0 {
		progress("%s: idle latency", name)
		ctx, cancel := context.WithTimeout(ctx, p.latBudget+p.budget)
		d, err := l.latency(ctx, p.latencyTasks, p.latBudget)
		cancel()
		if err != nil {
			res.fail("latency", err)
		}
		if len(d) > 0 {
			res.Latency = summarize(d)
		}
	}
	return res
}

// concurrentPath returns how a system enqueues under many producers, or
// nil if it cannot.
func concurrentPath(s system) func(context.Context, int) error {
	if c, ok := s.(concurrentEnqueuer); ok {
		return c.enqueueConcurrent
	}
	if q, ok := s.(enqueuer); ok {
		return q.enqueue
	}
	return nil
}

// fanOut calls fn for i in [0, n) from workers goroutines and returns the
// first error.
func fanOut(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// phase resets the system with its workers stopped, runs fn over tasks
// tasks and returns the rate, or nil after recording the error.
func (r *Result) phase(ctx context.Context, name string, s system, p phases, reset func(bool) error,
	tasks int, fn func(context.Context) error) *Rate {
	if err := reset(false); err != nil {
		r.fail(name, fmt.Errorf("reset: %w", err))
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.budget)
	defer cancel()
	cpu0 := selfCPU() + treeCPU(serversOf(s))
	start := time.Now()
	err := fn(ctx)
	el := time.Since(start)
	cpu := selfCPU() + treeCPU(serversOf(s)) - cpu0
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %s: %w", p.budget, err)
		}
		r.fail(name, err)
		return nil
	}
	return &Rate{Tasks: tasks, Seconds: el.Seconds(), PerSecond: float64(tasks) / el.Seconds(),
		CPUSeconds: cpu.Seconds()}
}

// endToEnd runs the end-to-end phase and records its rate and resources.
func (r *Result) endToEnd(ctx context.Context, s system, run runner, p phases, reset func(bool) error) {
	if err := reset(true); err != nil {
		r.fail("end_to_end", fmt.Errorf("reset: %w", err))
		return
	}
	servers := serversOf(s)
	var dirs []string
	if st, ok := s.(storer); ok {
		dirs = st.dirs()
	}

	// Start every peak afresh; the servers' memory is sampled when there
	// are several processes, whose peaks cannot be added.
	runtime.GC()
	resetPeak(os.Getpid())
	for _, pid := range servers {
		for _, q := range tree(pid) {
			resetPeak(q)
		}
	}
	stopSampling, serverPeak := samplePSS(servers)
	disk0, err := storedBytes(ctx, s, dirs)
	if err != nil {
		r.fail("end_to_end", fmt.Errorf("size before: %w", err))
		return
	}
	recv0, _ := procCPU(p.receiverPID)
	cpu0 := selfCPU() + treeCPU(servers)
	if p.cpuProfile != "" {
		f, err := os.Create(p.cpuProfile)
		if err == nil {
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}

	ctx, cancel := context.WithTimeout(ctx, p.budget)
	defer cancel()
	start := time.Now()
	err = run.run(ctx, p.n)
	el := time.Since(start)
	cpu := selfCPU() + treeCPU(servers) - cpu0
	recv1, _ := procCPU(p.receiverPID)
	stopSampling()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %s: %w", p.budget, err)
		}
		r.fail("end_to_end", err)
		return
	}

	n := float64(p.n)
	r.EndToEnd = &Rate{Tasks: p.n, Seconds: el.Seconds(), PerSecond: n / el.Seconds(),
		CPUSeconds: cpu.Seconds()}
	r.CPUPerTaskUS = float64(cpu.Microseconds()) / n
	r.ReceiverCPUPerTaskUS = float64((recv1 - recv0).Microseconds()) / n
	r.AppRSSMB = float64(statusKB(os.Getpid(), "VmHWM")) / 1024
	r.ServerRSSMB = float64(serverPeak()) / 1024
	disk1, err := storedBytes(ctx, s, dirs)
	if err != nil {
		r.fail("end_to_end", fmt.Errorf("size after: %w", err))
		return
	}
	r.DiskPerTask = float64(disk1-disk0) / n
}

// storedBytes returns the bytes s keeps on disk: its own figure if it has
// one, else the blocks allocated under dirs.
func storedBytes(ctx context.Context, s system, dirs []string) (int64, error) {
	if sz, ok := s.(sizer); ok {
		return sz.size(ctx)
	}
	return diskBytes(dirs), nil
}

// samplePSS returns a function that stops sampling and one that returns
// the peak memory of the processes rooted at servers, in KiB: the VmHWM of
// a lone process, else the peak of the summed PSS of the tree, sampled
// every 100 ms.
func samplePSS(servers []int) (stop func(), peak func() int64) {
	var mu sync.Mutex
	var top int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	sample := func() {
		var sum int64
		for _, root := range servers {
			pids := tree(root)
			if len(pids) == 1 {
				sum += statusKB(root, "VmHWM")
				continue
			}
			for _, q := range pids {
				sum += pssKB(q)
			}
		}
		mu.Lock()
		top = max(top, sum)
		mu.Unlock()
	}
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	})
	stop = func() {
		close(done)
		wg.Wait()
		sample()
	}
	peak = func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return top
	}
	return stop, peak
}

// serversOf returns the server PIDs of s, if it has any.
func serversOf(s system) []int {
	if sv, ok := s.(serverer); ok {
		return sv.servers()
	}
	return nil
}

// fail records the error of a phase.
func (r *Result) fail(phase string, err error) {
	if r.PhaseErrors == nil {
		r.PhaseErrors = map[string]string{}
	}
	r.PhaseErrors[phase] = err.Error()
	progress("%s n=%d: %s: %v", r.System, r.N, phase, err)
}

// summarize returns the percentiles of d.
func summarize(d []time.Duration) *Latency {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		i = min(max(i, 0), len(s)-1)
		return float64(s[i].Microseconds()) / 1000
	}
	return &Latency{Count: len(s), P50ms: at(0.50), P99ms: at(0.99), MaxMs: at(1)}
}

// progress writes a line about what runs now to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// sequentialLatency is the latency loop most systems share: enqueue runs
// one task and returns once its result is stored.
func sequentialLatency(ctx context.Context, count int, budget time.Duration,
	one func(ctx context.Context, i int) error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, count)
	deadline := time.Now().Add(budget)
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		start := time.Now()
		if err := one(ctx, i); err != nil {
			return out, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}
