package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
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
			if err := a.checkBackupTarget(dst, force); err != nil {
				return err
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
			if err := verifyCopy(cmd.Context(), tmp.Name()); err != nil {
				return fmt.Errorf("backup: the copy is not sound, so %s was not written: %w", dst, err)
			}
			if err := os.Rename(tmp.Name(), dst); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := syncDir(filepath.Dir(dst)); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s) in %s\n", dst, byteSize(n),
				time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}

// checkBackupTarget refuses a backup's destination that exists (without
// force), that is the store itself, or that another process holds open as
// a store: renaming the copy over a file that a process writes to would
// leave that process writing to a deleted file, losing what it stores
// after.
func (a *app) checkBackupTarget(dst string, force bool) error {
	fi, err := os.Stat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return usagef("backup: %s is not a regular file", dst)
	}
	if store, err := os.Stat(a.storePath()); err == nil && os.SameFile(fi, store) {
		return usagef("backup: %s is the store itself; write the copy elsewhere", dst)
	}
	if held, err := lockHeld(dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	} else if held {
		return fmt.Errorf("backup: %s is a store that a running process holds; "+
			"write the copy elsewhere", dst)
	}
	if !force {
		return fmt.Errorf("backup: %s exists; pass --force to replace it", dst)
	}
	return nil
}

// lockHeld reports whether a process holds a lock on the file at path, as
// bbolt does on a store it has open.
func lockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// verifyCopy checks the store file at path as "hookq check FILE" does, in
// a child process: bbolt's page check of a file opened read-only first
// walks every page from a goroutine of its own, and a damaged page there
// would crash this process and leave the temporary copy behind.
func verifyCopy(ctx context.Context, path string) error {
	rep, err := (&app{storeFile: path}).checkInChild(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%s, the first: %s", plural(len(rep.Problems), "problem"), rep.Problems[0])
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
