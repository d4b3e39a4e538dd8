package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookq/hookq/storage"
)

// newBackupCmd returns "hookq backup".
func newBackupCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Copy the store to FILE, consistently, while the server runs",
		Long: `Backup writes a consistent copy of the store to FILE: every task as it was at
one instant. With a server running it is copied through the server while
dispatch goes on; otherwise the store is read directly.

The copy is written next to FILE under a temporary name, synced, checked
(bbolt's page check and hookq's invariants) and only then renamed to FILE, so
FILE is either a complete, verified copy or absent. To restore, stop the
server and put the copy in place of DIR/hookq.db; tasks that were in flight
when the copy was taken run again.`,
		Example: `  hookq backup /var/backups/hookq-$(date +%F).db
  hookq --data /srv/hookq backup --force /mnt/backup/hookq.db`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := args[0]
			if _, err := os.Stat(dst); err == nil && !force {
				return fmt.Errorf("backup: %s exists; pass --force to replace it", dst)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("backup: %w", err)
			}
			start := time.Now()
			tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			defer os.Remove(tmp.Name()) // a no-op after the rename

			api, err := a.connect(readAccess, cmd.ErrOrStderr())
			if err != nil {
				tmp.Close()
				return err
			}
			n, err := api.Backup(cmd.Context(), tmp)
			api.Close()
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := verifyCopy(tmp.Name()); err != nil {
				return fmt.Errorf("backup: the copy is not sound, so %s was not written: %w", dst, err)
			}
			if err := os.Rename(tmp.Name(), dst); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := syncDir(filepath.Dir(dst)); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s) in %s\n", dst, sizeString(n),
				time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}

// verifyCopy opens the store file at path read-only and checks it.
func verifyCopy(path string) error {
	s, err := storage.Open(path, &storage.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	if problems := s.Check(); len(problems) > 0 {
		return fmt.Errorf("%d problems, the first: %w", len(problems), problems[0])
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sizeString formats a byte count in binary units.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
