// Command hookq runs and drives a durable queue of HTTP callback tasks.
//
// `hookq serve` runs the queue over a data directory: workers, the HTTP API
// on a TCP listener, and the same API on the unix socket DIR/hookq.sock.
// The other commands find a running server through that socket; with none
// running they open the store DIR/hookq.db directly. Either way they print
// the same thing.
//
// Exit codes: 0 on success, 1 when the operation failed (a task failed or
// was not found, the store is busy, ...), 2 on a usage error, which includes
// an invalid task and a flag out of its range. Errors go to stderr as
// "hookq: <message>".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hookq/hookq/queue"
)

// version is the version of hookq, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The first SIGINT or SIGTERM cancels the command's context; after
	// it, the default handling is back, so a second one ends the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()

	root := newRootCmd(&app{stdin: stdin})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// The message may quote an endpoint or the user: make it printable.
	fmt.Fprintf(stderr, "hookq: %s\n", printable(err.Error()))
	switch {
	case isUsage(err):
		fmt.Fprintln(stderr, `Run "hookq --help" for usage.`)
		return 2
	case errors.Is(err, queue.ErrInvalid):
		// The task as given cannot be enqueued, whether the store said so
		// or a server did (its "invalid" code unwraps to ErrInvalid).
		return 2
	default:
		return 1
	}
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// isUsage reports whether err is a usage error, including those cobra
// makes itself for unknown commands.
func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ")
}

// causeError is an error with a message of its own that still unwraps to
// its cause, so errors.Is works without the cause's text being repeated.
type causeError struct {
	msg   string
	cause error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.cause }
