package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/queue"
)

// backupSuffix names the original file that compact --keep-backup keeps.
const backupSuffix = ".bak"

// newCompactCmd returns "hookq compact".
func newCompactCmd(a *app) *cobra.Command {
	var keepBackup bool
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Shrink the store file to its live data (server stopped)",
		Long: `Compact rewrites the store DATA/hookq.db without the pages that deleted
tasks left free, and prints its size before and after. The file never
shrinks otherwise: the retention sweep and purge free pages for reuse.

It works offline only: stop "hookq serve" first. It holds the store for the
whole copy, so other commands wait or fail as busy meanwhile.

The copy is written to DATA/hookq.db.compact, synced, and renamed over the
store, so a crash or kill at any moment leaves the store whole (the
original, or the finished copy); a copy left by a killed run is removed by
the next one. The original is not kept unless --keep-backup is given: then
it stays as DATA/hookq.db.bak, which must not exist yet. The copy needs
free disk space as large as the live data.`,
		Example: `  hookq compact
  hookq compact --keep-backup && ls -l hookq-data/`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.compact(cmd, keepBackup)
		},
	}
	cmd.Flags().BoolVar(&keepBackup, "keep-backup", false,
		"keep the original file as "+storeFile+backupSuffix)
	return cmd
}

// compact runs "hookq compact".
func (a *app) compact(cmd *cobra.Command, keepBackup bool) error {
	path := a.storePath()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &causeError{msg: fmt.Sprintf("no queue in %s (%s does not exist)", a.dataDir(), path),
			cause: err}
	}
	if socketAnswers(a.socketPath()) {
		return fmt.Errorf("a server is running on %s: compact works offline only; "+
			"stop \"hookq serve\" and run it again", a.dataDir())
	}
	// Compaction opens the store for writing, which walks every page: a
	// damaged one would crash this process (see probeStore).
	if err := a.probeStore(cmd.Context()); err != nil {
		return err
	}
	opts := &queue.CompactOptions{LockTimeout: writeLockTimeout}
	if keepBackup {
		opts.Backup = path + backupSuffix
		if _, err := os.Lstat(opts.Backup); err == nil {
			return fmt.Errorf("%s already exists: move it away, or compact without --keep-backup",
				opts.Backup)
		}
	}
	bar := newProgress(cmd.ErrOrStderr(), "compacting")
	opts.Progress = bar.set

	res, err := queue.Compact(path, opts)
	bar.finish()
	if errors.Is(err, queue.ErrLocked) {
		return &causeError{
			msg: fmt.Sprintf("the store %s is in use by another hookq process (a server starting, "+
				"or another command): compact works offline only; try again once it is done", path),
			cause: err,
		}
	}
	if err != nil {
		return err
	}

	out := cmd.OutOrStdout()
	saved := 0.0
	if res.Before > 0 {
		saved = 100 * float64(res.Before-res.After) / float64(res.Before)
	}
	fmt.Fprintf(out, "compacted %s: %s -> %s (%.0f%% smaller)\n", path, byteSize(res.Before),
		byteSize(res.After), saved)
	if keepBackup {
		fmt.Fprintf(out, "the original is kept as %s\n", opts.Backup)
	}
	return nil
}
