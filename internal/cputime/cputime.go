// Package cputime reads the CPU time the process has used, for benchmarks
// that report CPU per operation: on a shared machine it is less disturbed
// by other processes than wall time, and it leaves out time spent waiting
// for the disk.
package cputime
