package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseCounts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "10000", want: []int{10000}},
		{in: "100k,10k, 1M", want: []int{10000, 100000, 1000000}},
		{in: "1_000,1000", want: []int{1000}},
		{in: "0", err: true},
		{in: "ten", err: true},
	} {
		got, err := parseCounts(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("parseCounts(%q) error = %v; want error %v", tc.in, err, tc.err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseCounts(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseSystems(t *testing.T) {
	got, err := parseSystems("http,hookq")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"hookq", "http"}; !slices.Equal(got, want) {
		t.Errorf("parseSystems = %v; want %v (the usual order)", got, want)
	}
	if _, err := parseSystems("hookq,celery"); err == nil {
		t.Error("parseSystems accepted an unknown system")
	}
	for _, name := range systemNames {
		if newSystem(name) == nil {
			t.Errorf("newSystem(%q) = nil", name)
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	want := Latency{Count: 100, P50ms: 50, P99ms: 99, MaxMs: 100}
	if *got != want {
		t.Errorf("summarize = %+v; want %+v", *got, want)
	}
	if d[0] != 100*time.Millisecond {
		t.Error("summarize sorted its argument")
	}
}

func TestFanOut(t *testing.T) {
	t.Run("EveryIndexOnce", func(t *testing.T) {
		seen := make([]atomic.Int32, 1000)
		err := fanOut(context.Background(), len(seen), 16, func(_ context.Context, i int) error {
			seen[i].Add(1)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range seen {
			if n := seen[i].Load(); n != 1 {
				t.Fatalf("index %d ran %d times; want 1", i, n)
			}
		}
	})
	t.Run("FirstErrorStops", func(t *testing.T) {
		boom := errors.New("boom")
		var calls atomic.Int64
		err := fanOut(context.Background(), 1_000_000, 4, func(_ context.Context, i int) error {
			calls.Add(1)
			if i == 10 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("fanOut = %v; want %v", err, boom)
		}
		if calls.Load() == 1_000_000 {
			t.Error("fanOut went on after an error")
		}
	})
}

func TestProc_Self(t *testing.T) {
	// Burn a little CPU so that the counters move past a clock tick.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	pid := os.Getpid()
	cpu, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 || selfCPU() <= 0 {
		t.Errorf("procCPU = %s, selfCPU = %s; want both above 0", cpu, selfCPU())
	}
	// The kernel updates VmHWM lazily, so it may trail VmRSS a little.
	if hwm, rss := statusKB(pid, "VmHWM"), statusKB(pid, "VmRSS"); hwm <= 0 || rss <= 0 {
		t.Errorf("VmHWM = %d KiB, VmRSS = %d KiB; want both above 0", hwm, rss)
	}
	if tr := tree(os.Getppid()); !slices.Contains(tr, pid) {
		t.Errorf("tree(parent) = %v; want it to hold %d", tr, pid)
	}
	if _, err := procCPU(-1); err == nil {
		t.Error("procCPU(-1) succeeded")
	}
}

func TestDiskBytes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/f", []byte(strings.Repeat("x", 10000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := diskBytes([]string{dir}); got < 10000 {
		t.Errorf("diskBytes = %d; want at least the 10000 bytes written", got)
	}
}

func TestSmokeVerdict(t *testing.T) {
	ok := &Result{System: "hookq", EndToEnd: &Rate{Tasks: 1}}
	var out strings.Builder
	if err := smokeVerdict(&out, &Run{Results: []*Result{ok}}); err != nil {
		t.Errorf("smokeVerdict(all fine) = %v", err)
	}
	bad := &Result{System: "hookq-serve", PhaseErrors: map[string]string{"latency": "x"},
		EndToEnd: &Rate{Tasks: 1}}
	if err := smokeVerdict(&out, &Run{Results: []*Result{ok, bad}}); err == nil {
		t.Error("smokeVerdict passed a run with a failed phase")
	}
	if want := "smoke: 1 passed, 0 failed\nsmoke: 1 passed, 1 failed\n"; out.String() != want {
		t.Errorf("smokeVerdict printed %q; want %q", out.String(), want)
	}
}
