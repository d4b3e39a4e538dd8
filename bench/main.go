// Command bench runs hookq and other job queues on the same work and
// prints one table of their figures, with ratios to hookq.
//
//	cd bench && go run . [-n 10000,100000] [-systems hookq,asynq,...] [-json out.json]
//
// The work is N tasks, each an HTTP GET of /multiply?x=..&y=.. on a
// receiver in a process of its own, whose answer each system stores as
// the task's result. Each system runs in a child process of this binary,
// with the servers it needs (Redis, Postgres, hookq serve) started on
// 127.0.0.1 in a temporary directory and stopped at the end. See
// README.md for the phases and what each figure means.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	ns          []int
	systems     []string
	peerMax     int
	jsonOut     string
	redisFsync  string
	sqliteSync  string
	budget      time.Duration
	latBudget   time.Duration
	latTasks    int
	cpuProfile  string
	hookqBin    string
	src         string
	keep        bool
	smoke       bool
	child       string
	childN      int
	receiver    string
	recvAddr    string
	receiverPID int
	dir         string
}

func main() {
	var c config
	var ns, systems string
	flag.StringVar(&ns, "n", "10000,100000", "task counts, comma-separated; hookq runs at every one")
	flag.StringVar(&systems, "systems", "all", "systems to run, comma-separated: all or "+
		strings.Join(systemNames, ","))
	flag.IntVar(&c.peerMax, "peer-max", 100000, "largest task count at which systems other than hookq run")
	flag.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&c.redisFsync, "redis-fsync", "always", "Redis appendfsync: always, everysec, or no (no AOF)")
	flag.StringVar(&c.sqliteSync, "sqlite-sync", "FULL", "SQLite synchronous pragma: FULL or NORMAL")
	flag.DurationVar(&c.budget, "phase-timeout", 5*time.Minute, "longest a phase may run before it is reported as not done")
	flag.DurationVar(&c.latBudget, "latency-time", 15*time.Second, "longest the idle latency phase runs")
	flag.IntVar(&c.latTasks, "latency-tasks", 1000, "tasks of the idle latency phase, one at a time")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of hookq's end-to-end phase (largest n) to this file")
	flag.StringVar(&c.hookqBin, "hookq-bin", "", "hookq binary for hookq-serve; empty builds it from -src")
	flag.StringVar(&c.src, "src", "..", "hookq's source tree, to build the binary from")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory with the stores and server logs")
	flag.BoolVar(&c.smoke, "smoke", false, "a seconds-long check: hookq and hookq-serve, 2,000 tasks")
	flag.StringVar(&c.receiver, "receiver", "", "run as the receiver on this address (internal)")
	flag.StringVar(&c.child, "child", "", "run one system (internal)")
	flag.IntVar(&c.childN, "child-n", 0, "the task count of -child (internal)")
	flag.StringVar(&c.recvAddr, "receiver-addr", "", "the receiver's address, for -child (internal)")
	flag.IntVar(&c.receiverPID, "receiver-pid", 0, "the receiver's PID, for -child (internal)")
	flag.StringVar(&c.dir, "dir", "", "the directory of -child (internal)")
	flag.Parse()

	if c.receiver != "" {
		if err := runReceiver(c.receiver); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if c.smoke {
		ns, systems, c.latTasks = "2000", "hookq,hookq-serve", 200
	}
	var err error
	if c.ns, err = parseCounts(ns); err == nil {
		c.systems, err = parseSystems(systems)
	}
	if err == nil && c.redisFsync != "always" && c.redisFsync != "everysec" && c.redisFsync != "no" {
		err = fmt.Errorf("-redis-fsync %q: want always, everysec or no", c.redisFsync)
	}
	if err == nil {
		c.sqliteSync = strings.ToUpper(c.sqliteSync)
		if c.sqliteSync != "FULL" && c.sqliteSync != "NORMAL" {
			err = fmt.Errorf("-sqlite-sync %q: want FULL or NORMAL", c.sqliteSync)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	if c.child != "" {
		os.Exit(runChild(&c))
	}
	if err := orchestrate(&c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// parseCounts parses -n.
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		f = strings.NewReplacer("k", "000", "M", "000000", "_", "").Replace(f)
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n %q: want positive task counts", s)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseSystems parses -systems.
func parseSystems(s string) ([]string, error) {
	if s == "all" {
		return systemNames, nil
	}
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if newSystem(f) == nil {
			return nil, fmt.Errorf("-systems: unknown system %q (known: %s)", f,
				strings.Join(systemNames, ", "))
		}
		out = append(out, f)
	}
	// Run in the usual order whatever the order given.
	slices.SortFunc(out, func(a, b string) int {
		return slices.Index(systemNames, a) - slices.Index(systemNames, b)
	})
	return out, nil
}

// orchestrate starts the receiver, runs every system at every count in a
// child process, and prints the table.
func orchestrate(c *config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := os.MkdirTemp("", "hookq-bench-")
	if err != nil {
		return err
	}
	if c.keep {
		progress("keeping %s", root)
	} else {
		defer os.RemoveAll(root)
	}
	if slices.Contains(c.systems, "hookq-serve") && c.hookqBin == "" {
		c.hookqBin = filepath.Join(root, "hookq")
		progress("building hookq from %s", c.src)
		build := exec.CommandContext(ctx, "go", "build", "-o", c.hookqBin, "./cmd/hookq")
		build.Dir = c.src
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build hookq: %w", err)
		}
	}
	recv, err := startReceiver()
	if err != nil {
		return err
	}
	defer recv.stop()
	progress("receiver on %s (pid %d)", recv.addr, recv.cmd.Process.Pid)

	run := &Run{Started: time.Now().UTC(), Machine: machine(), Settings: settings(c)}
	largest := c.ns[len(c.ns)-1]
	for _, n := range c.ns {
		for _, name := range c.systems {
			if !isHookq(name) && n > c.peerMax {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			profile := ""
			if name == "hookq" && n == largest {
				profile = c.cpuProfile
			}
			// Idle latency does not depend on the count: it runs once.
			latTasks := c.latTasks
			if n != c.ns[0] {
				latTasks = 0
			}
			res := runSystem(ctx, c, name, n, latTasks, recv,
				filepath.Join(root, fmt.Sprintf("%s-%d", name, n)), profile)
			run.Results = append(run.Results, res)
		}
	}
	run.Finished = time.Now().UTC()

	printTable(os.Stdout, run)
	if c.jsonOut != "" {
		b, err := json.MarshalIndent(run, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", c.jsonOut, err)
		}
	}
	if c.smoke {
		return smokeVerdict(os.Stdout, run)
	}
	return nil
}

// smokeVerdict prints how many systems ran every phase without an error
// and fails if one did not. It checks that everything runs, not how fast.
func smokeVerdict(w io.Writer, run *Run) error {
	passed, failed := 0, 0
	for _, r := range run.Results {
		if r.Error == "" && len(r.PhaseErrors) == 0 && r.EndToEnd != nil {
			passed++
		} else {
			failed++
		}
	}
	fmt.Fprintf(w, "smoke: %d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d systems failed", failed, passed+failed)
	}
	return nil
}

// runSystem runs one system at one count in a child process and returns
// what it measured; a child that fails yields a result saying so.
func runSystem(ctx context.Context, c *config, name string, n, latTasks int,
	recv *receiverProc, dir, profile string) *Result {
	progress("== %s, %d tasks", name, n)
	fail := func(err error) *Result {
		return &Result{System: name, N: n, Error: err.Error()}
	}
	if err := mkdir(dir); err != nil {
		return fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	args := []string{"-child", name, "-child-n", strconv.Itoa(n), "-dir", dir,
		"-receiver-addr", recv.addr, "-receiver-pid", strconv.Itoa(recv.cmd.Process.Pid),
		"-hookq-bin", c.hookqBin, "-redis-fsync", c.redisFsync, "-sqlite-sync", c.sqliteSync,
		"-phase-timeout", c.budget.String(), "-latency-time", c.latBudget.String(),
		"-latency-tasks", strconv.Itoa(latTasks), "-cpuprofile", profile}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	var res Result
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		if err == nil {
			err = jerr
		}
		return fail(fmt.Errorf("run: %w", err))
	}
	return &res
}

// runChild runs one system at one count and prints its result as JSON.
func runChild(c *config) int {
	s := newSystem(c.child)
	if s == nil {
		fmt.Fprintf(os.Stderr, "bench: unknown system %q\n", c.child)
		return 2
	}
	e := &env{dir: c.dir, url: taskURL(c.recvAddr), hookqBin: c.hookqBin,
		redisFsync: c.redisFsync, sqliteSync: c.sqliteSync}
	p := phases{n: c.childN, seqTasks: min(max(c.childN/5, 1), 2000), latencyTasks: c.latTasks,
		budget: c.budget, latBudget: c.latBudget, cpuProfile: c.cpuProfile,
		receiverPID: c.receiverPID}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := measure(ctx, c.child, s, e, p)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return 1
	}
	return 0
}
