package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// terminal is a hookq process whose standard input, output and error are
// a pseudo-terminal, as when a person runs it.
type terminal struct {
	cmd    *exec.Cmd
	master *os.File
	done   chan struct{} // closed when the process has exited
	code   int

	mu      sync.Mutex
	out     bytes.Buffer  // everything the process wrote
	changed chan struct{} // closed and replaced when output comes
}

// openPTY returns the master and slave ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	return m, s
}

// startTerminal starts hookq on dir with a pseudo-terminal for its
// standard streams; the test's cleanup kills it if it still runs.
func startTerminal(t *testing.T, dir string, args ...string) *terminal {
	t.Helper()
	master, slave := openPTY(t)
	tm := &terminal{cmd: command(dir, args...), master: master, done: make(chan struct{}),
		changed: make(chan struct{})}
	tm.cmd.Stdin, tm.cmd.Stdout, tm.cmd.Stderr = slave, slave, slave
	if err := tm.cmd.Start(); err != nil {
		t.Fatalf("start hookq: %v", err)
	}
	slave.Close()

	// The master reads until the process and every copy of the slave are
	// gone (EIO).
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			close(tm.changed)
			tm.changed = make(chan struct{})
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		tm.cmd.Wait()
		tm.code = tm.cmd.ProcessState.ExitCode()
		<-read
		close(tm.done)
	}()
	t.Cleanup(func() {
		tm.cmd.Process.Kill()
		<-tm.done
		master.Close()
	})
	return tm
}

// output returns what the process wrote so far, with the terminal's
// CR LF line ends as LF.
func (tm *terminal) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return strings.ReplaceAll(tm.out.String(), "\r\n", "\n")
}

// waitFor waits until the output contains s.
func (tm *terminal) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(patience)
	for {
		tm.mu.Lock()
		found, changed := strings.Contains(tm.out.String(), s), tm.changed
		tm.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-tm.done:
			if !strings.Contains(tm.output(), s) {
				t.Fatalf("hookq exited without writing %q:\n%s", s, tm.output())
			}
			return
		case <-deadline:
			t.Fatalf("hookq did not write %q:\n%s", s, tm.output())
		}
	}
}

// typeLine types s and Enter.
func (tm *terminal) typeLine(t *testing.T, s string) {
	t.Helper()
	if _, err := tm.master.Write([]byte(s + "\n")); err != nil {
		t.Fatalf("type: %v", err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (tm *terminal) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-tm.done:
		return tm.code
	case <-time.After(patience):
		t.Fatalf("hookq did not exit:\n%s", tm.output())
		return -1
	}
}
