package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/cmd/hookq/internal/httpapi"
	"github.com/hookq/hookq/queue"
	"github.com/hookq/hookq/storage"
)

// errUnsound reports a store whose check found problems: exit code 1 after
// the report.
var errUnsound = errors.New("the store has problems")

// newCheckCmd returns "hookq check".
func newCheckCmd(a *app) *cobra.Command {
	var asJSON, openOnly bool
	cmd := &cobra.Command{
		Use:   "check [DIR | FILE]",
		Short: "Verify the store: bbolt's page check and hookq's invariants",
		Long: `Check reads the whole store and verifies it: bbolt's own check of its pages,
then hookq's invariants (every record decodes, the schedule index holds
exactly the unfinished tasks, keys and attempts belong to stored tasks, the
per-state counters equal a count of the records). It prints every problem
found and exits 1 if there is any, 0 if the store is sound.

DIR is the data directory (default: --data, $HOOKQ_DATA, ./hookq-data). With
a server running on it, the server runs the check in one read transaction
while it goes on dispatching. FILE is a store file, such as a copy made
by "hookq backup", checked with no server.`,
		Example: `  hookq check
  hookq check /var/lib/hookq && echo sound
  hookq check /backups/hookq-2030-01-02.db
  hookq check --json | jq .problems`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				a.checkTarget(args[0])
			}
			if openOnly {
				return openStoreOnly(a.storePath())
			}
			start := time.Now()
			rep, err := a.check(cmd.Context())
			if err != nil {
				return err
			}
			rep.Seconds = time.Since(start).Seconds()
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				printCheck(cmd, a.storePath(), rep)
			}
			if !rep.OK {
				return &causeError{msg: fmt.Sprintf("%s: %s", a.storePath(), plural(len(rep.Problems), "problem")),
					cause: errUnsound}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"ok": ..., "problems": [...]} as JSON`)
	cmd.Flags().BoolVar(&openOnly, "open-only", false, "only open the store for writing, as serve does")
	cmd.Flags().MarkHidden("open-only")
	return cmd
}

// checkTarget makes path, the argument of check, the store to check: a
// data directory, or a store file. A data directory's own store file
// counts as its directory, so that a server running on it does the check.
// A path that does not exist is taken as a directory, which has no store.
func (a *app) checkTarget(path string) {
	fi, err := os.Stat(path)
	switch {
	case err != nil || fi.IsDir():
		a.dataFlag = path
	case filepath.Base(path) == storeFile:
		a.dataFlag = filepath.Dir(path)
	default:
		a.storeFile = path
	}
}

// check runs the check through a running server, or on the store opened
// read-only. A store that cannot be opened for a reason other than a lock
// or its absence is reported as unsound, not as a failure to check.
func (a *app) check(ctx context.Context) (rep *httpapi.CheckReport, err error) {
	if a.storeFile == "" {
		if c := a.dialServer(); c != nil {
			defer c.Close()
			return c.c.Check(ctx)
		}
	}
	if os.Getenv(envCheckChild) != "1" {
		return a.checkInChild(ctx)
	}
	q, err := a.openStore(readAccess, io.Discard, 0)
	var problems []error
	switch {
	case errors.Is(err, queue.ErrLocked), errors.Is(err, fs.ErrNotExist):
		return nil, err
	case err != nil:
		problems = []error{err}
	default:
		defer q.Close()
		if problems, err = q.Check(ctx); err != nil {
			return nil, err
		}
	}
	return httpapi.NewCheckReport(problems), nil
}

// envCheckChild marks the child process that checks a store for its parent.
const envCheckChild = "HOOKQ_CHECK_CHILD"

// checkInChild runs the direct check in a child process of this binary. A
// damaged page can make bbolt read outside the file's mapping, which kills
// the process that reads it, beyond any recover; a child reports that as
// the store's problem instead of taking the command down.
func (a *app) checkInChild(ctx context.Context) (*httpapi.CheckReport, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	args := []string{"--data", a.dataDir(), "check", "--json"}
	if a.storeFile != "" {
		args = []string{"check", "--json", "--", a.storeFile}
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), envCheckChild+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var rep httpapi.CheckReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr == nil {
		return &rep, nil // exit 1 with a report means problems, not failure
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		return nil, fmt.Errorf("check: %w", cmp.Or(ctx.Err(), err))
	}
	if crashed(err, stderr.String()) {
		first, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return httpapi.NewCheckReport([]error{fmt.Errorf(
			"reading the store crashed the checker (%s): a page is damaged", first)}), nil
	}
	// The child failed the way any command can (busy or missing store):
	// pass its message on.
	msg := strings.TrimPrefix(strings.TrimSpace(stderr.String()), "hookq: ")
	return nil, errors.New(cmp.Or(msg, err.Error()))
}

// openStoreOnly opens the store for writing and closes it: the child side
// of probeStore.
func openStoreOnly(path string) error {
	s, err := storage.Open(path, &storage.Options{LockTimeout: serveLockTimeout})
	if err != nil {
		return err
	}
	return s.Close()
}

// probeStore opens the store for writing in a child process before serve
// opens it. Opening walks every page to rebuild the free list, and bbolt
// crashes the process on a damaged page from a goroutine of its own, which
// no recover reaches; the child takes that crash, and serve refuses the
// store with a message instead. A missing store, or one another process
// holds, is left for serve's own open to report.
func (a *app) probeStore(ctx context.Context) error {
	if _, err := os.Stat(a.storePath()); err != nil {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("probe store: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, "--data", a.dataDir(), "check", "--open-only")
	cmd.Env = append(os.Environ(), envCheckChild+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err == nil || ctx.Err() != nil {
		return nil
	}
	// The child may also catch the damage on its own goroutine and exit
	// with an error before bbolt's goroutine crashes it: a race that a
	// loaded machine loses often enough. Either way the store is damaged.
	out := stderr.String()
	how := "crashed"
	switch {
	case crashed(err, out):
	case strings.Contains(out, storage.ErrDamaged.Error()):
		how = "failed"
	default:
		return nil
	}
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return fmt.Errorf("open store %s: %w: opening it %s (%s); "+
		"run \"hookq check\" for a report, and restore the file from a backup",
		a.storePath(), storage.ErrDamaged, how, first)
}

// crashed reports whether a child process died of a crash (a signal, a Go
// panic or fatal error) rather than exiting with an error.
func crashed(err error, stderr string) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, _ := exit.Sys().(syscall.WaitStatus)
	return ws.Signaled() || strings.Contains(stderr, "fatal error:") || strings.Contains(stderr, "panic:")
}

// printCheck prints a check's report for people.
func printCheck(cmd *cobra.Command, path string, rep *httpapi.CheckReport) {
	w := cmd.OutOrStdout()
	if rep.OK {
		fmt.Fprintf(w, "%s: sound (checked in %.2fs)\n", path, rep.Seconds)
		return
	}
	fmt.Fprintf(w, "%s: %s found (checked in %.2fs):\n", path, plural(len(rep.Problems), "problem"), rep.Seconds)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  - %s\n", printable(p))
	}
}
