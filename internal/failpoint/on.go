//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled reports whether this build has failpoints; it has.
const Enabled = true

// Env is the environment variable that arms failpoints: name=N,...
const Env = "HOOKQ_FAILPOINTS"

var (
	mu    sync.Mutex
	armed = parse(os.Getenv(Env)) // name → hits left before the crash
)

// parse reads name=N,... and panics on anything else: a test that arms a
// failpoint it misspelled must not pass for want of a crash.
func parse(s string) map[string]int {
	m := make(map[string]int)
	if s == "" {
		return m
	}
	known := make(map[string]bool)
	for _, p := range Points {
		known[p] = true
	}
	for _, item := range strings.Split(s, ",") {
		name, count, ok := strings.Cut(item, "=")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 1 || !known[name] {
			panic(fmt.Sprintf("%s: %q is not name=N with a known failpoint and N >= 1", Env, item))
		}
		m[name] = n
	}
	return m
}

// Hit marks a failpoint: at the Nth hit of an armed point the process
// kills itself with SIGKILL.
func Hit(name string) {
	mu.Lock()
	n, ok := armed[name]
	if ok {
		n--
		armed[name] = n
	}
	mu.Unlock()
	if ok && n == 0 {
		fmt.Fprintf(os.Stderr, "failpoint %s: killing the process\n", name)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
