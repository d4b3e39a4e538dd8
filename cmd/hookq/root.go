package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// Files in the data directory.
const (
	storeFile  = "hookq.db"
	socketFile = "hookq.sock"
	defaultDir = "hookq-data"
	envData    = "HOOKQ_DATA"
)

// app holds what every command shares: the global flags and the standard
// input (for --json -).
type app struct {
	dataFlag string
	stdin    io.Reader
	// storeFile, if set, is a store file to use instead of the data
	// directory's, such as a backup given to "hookq check"; no server
	// serves it.
	storeFile string
}

// dataDir returns the data directory: --data, else $HOOKQ_DATA, else
// ./hookq-data.
func (a *app) dataDir() string {
	switch {
	case a.dataFlag != "":
		return filepath.Clean(a.dataFlag)
	case os.Getenv(envData) != "":
		return filepath.Clean(os.Getenv(envData))
	default:
		return defaultDir
	}
}

// storePath returns the path of the store file.
func (a *app) storePath() string {
	if a.storeFile != "" {
		return a.storeFile
	}
	return filepath.Join(a.dataDir(), storeFile)
}

// socketPath returns the path of the server's unix socket.
func (a *app) socketPath() string { return filepath.Join(a.dataDir(), socketFile) }

// newRootCmd returns the hookq command with all its subcommands.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "hookq",
		Short: "A durable queue of HTTP callback tasks (webhooks)",
		Long: `hookq is a durable queue of HTTP callback tasks in one binary.

"hookq serve" runs the queue: it makes the calls, retries transient failures
with exponential backoff and keeps each task's result. The other commands
talk to the running server through its socket in the data directory, or
open the store directly when no server runs.

The data directory is --data, else $HOOKQ_DATA, else ./hookq-data.`,
		Example: `  hookq serve &
  hookq add --wait http://127.0.0.1:8000/multiply x=10 y=10
  hookq ls`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("hookq {{.Version}}\n")
	root.PersistentFlags().StringVar(&a.dataFlag, "data", "",
		"data directory (default $"+envData+", else ./"+defaultDir+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{err}
	})
	root.SetHelpCommand(newHelpCmd())
	root.AddCommand(
		newServeCmd(a),
		newAddCmd(a),
		newLsCmd(a),
		newShowCmd(a),
		newWaitCmd(a),
		newRetryCmd(a),
		newCancelCmd(a),
		newStatsCmd(a),
		newPurgeCmd(a),
		newCompactCmd(a),
		newBackupCmd(a),
		newCheckCmd(a),
		newVersionCmd(),
	)
	addCompletionCmd(root)
	return root
}

// newHelpCmd returns "hookq help": cobra's own prints the usage and exits 0
// for a command it does not know, which this one makes a usage error.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  `Help shows a command's description, flags and examples.`,
		Example: `  hookq help
  hookq help add`,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, _, err := cmd.Root().Find(args)
			if err != nil || target == nil {
				return usagef("unknown help topic %q", strings.Join(args, " "))
			}
			target.InitDefaultHelpFlag()
			target.InitDefaultVersionFlag()
			return target.Help()
		},
	}
}

// oneTaskID checks that a command got one argument, a task ID (parseID
// checks its form).
func oneTaskID(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return usagef("%s takes a task ID", cmd.Name())
	default:
		return usagef("%s takes one task ID, not %d arguments", cmd.Name(), len(args))
	}
}

// usageArgs wraps an argument check so that its failures are usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
