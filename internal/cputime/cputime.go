// Package cputime reads the CPU time the process has used, for benchmarks
// that report CPU per operation: on a shared machine it is less disturbed
// by other processes than wall time, and it leaves out time spent waiting
// for the disk.
package cputime

import (
	"testing"
	"time"
)

// Clock measures the CPU time (user and system) of the whole process from
// Start on.
type Clock struct{ start time.Duration }

// Start returns a Clock started now.
func Start() Clock { return Clock{start: Process()} }

// Report reports the CPU time since Start per operation of b, as
// cpu-ns/op. Call it at the end of the benchmark.
func (c Clock) Report(b *testing.B) {
	b.ReportMetric(float64(Process()-c.start)/float64(b.N), "cpu-ns/op")
}
