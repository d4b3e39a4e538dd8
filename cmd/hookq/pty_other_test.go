//go:build !linux

package main

import "testing"

// terminal stands in for the Linux pseudo-terminal of pty_linux_test.go:
// tests that need one are skipped elsewhere.
type terminal struct{}

func startTerminal(t *testing.T, dir string, args ...string) *terminal {
	t.Helper()
	t.Skip("pseudo-terminal tests run on Linux only")
	return nil
}

func (tm *terminal) output() string                  { return "" }
func (tm *terminal) waitFor(t *testing.T, s string)  {}
func (tm *terminal) typeLine(t *testing.T, s string) {}
func (tm *terminal) wait(t *testing.T) int           { return 0 }
