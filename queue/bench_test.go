package queue

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hookq/hookq/internal/cputime"
)

// BenchmarkQueue_EndToEnd enqueues b.N GET-multiply tasks in batches and
// drains them through a loopback receiver in the same process.
func BenchmarkQueue_EndToEnd(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(multiply))
	defer srv.Close()
	var done atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	q, err := open(filepath.Join(b.TempDir(), "hookq.db"), nil, hooks{afterAttempt: func(ID, *Attempt) {
		if done.Add(1) == n {
			close(all)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	specs := make([]Spec, 0, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	for i := 0; i < b.N; i++ {
		specs = append(specs, Spec{URL: srv.URL + "/multiply", Args: map[string]any{"x": i, "y": 10}})
		if len(specs) == cap(specs) || i == b.N-1 {
			if _, err := q.EnqueueMany(context.Background(), specs); err != nil {
				b.Fatal(err)
			}
			specs = specs[:0]
		}
	}
	<-all
	cpu.Report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")

}

// BenchmarkQueue_EnqueueConcurrent measures durable single-task enqueues
// from 256 producers sharing commits.
func BenchmarkQueue_EnqueueConcurrent(b *testing.B) {
	q, err := Open(filepath.Join(b.TempDir(), "hookq.db"), &Options{DisableWorkers: true})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	for range 256 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := q.Enqueue(context.Background(), Spec{URL: "http://127.0.0.1:9/multiply",
					Args: map[string]any{"x": 10, "y": 10}}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpu.Report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkQueue_EnqueueBatch measures EnqueueMany with 1,000 tasks a commit.
func BenchmarkQueue_EnqueueBatch(b *testing.B) {
	q, err := Open(filepath.Join(b.TempDir(), "hookq.db"), &Options{DisableWorkers: true})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	specs := make([]Spec, 1000)
	for i := range specs {
		specs[i] = Spec{URL: "http://127.0.0.1:9/multiply", Args: map[string]any{"x": i, "y": 10}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Start()
	for i := 0; i < b.N; i += len(specs) {
		if _, err := q.EnqueueMany(context.Background(), specs); err != nil {
			b.Fatal(err)
		}
	}
	cpu.Report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkQueue_IdleLatency measures one task at a time, from Enqueue to
// Wait returning its result, through a loopback receiver in the same
// process: the latency of an idle queue, fsyncs included.
func BenchmarkQueue_IdleLatency(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(multiply))
	defer srv.Close()
	q, err := Open(filepath.Join(b.TempDir(), "hookq.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	spec := Spec{URL: srv.URL + "/multiply", Args: map[string]any{"x": 6, "y": 7}}
	b.ReportAllocs()
	for b.Loop() {
		t, err := q.Enqueue(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if t, err = q.Wait(ctx, t.ID); err != nil || t.State != Succeeded {
			b.Fatalf("wait: %v, %v", t.State, err)
		}
	}
}
