package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// maxSocketPath is the longest unix socket path every platform accepts
// (sun_path is 104 bytes on the BSDs and macOS, 108 on Linux).
const maxSocketPath = 103

// socketListener is the server's unix socket, created with mode 0600.
type socketListener struct {
	net.Listener
	path string
	info fs.FileInfo // the socket file as created, to remove only our own
}

// listenSocket listens on a unix socket at path, replacing a socket file
// already there, and reports whether it replaced one.
//
// The caller must first make sure that no server answers on path (or hold
// the store's lock, which proves that none serves this directory): a socket
// file that nothing answers on was left by a server that died.
//
// The socket is created in a fresh private directory, given mode 0600 and
// then renamed into place, so no other user can connect to it at any
// moment, whatever the process's umask.
func listenSocket(path string) (*socketListener, bool, error) {
	if len(path) > maxSocketPath {
		return nil, false, fmt.Errorf("socket path %s is %d bytes, over the limit of %d: "+
			"use a shorter --data", path, len(path), maxSocketPath)
	}
	stale := false
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, false, fmt.Errorf("%s exists and is not a socket: move it away", path)
		}
		stale = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}

	// Create it where only we can reach it, then move it into place.
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".s")
	if err != nil {
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, false, fmt.Errorf("listen on %s: %w", path, err)
	}
	return &socketListener{Listener: ln, path: path, info: info}, stale, nil
}

// inPlace reports whether the socket file at the listener's path is still
// the one it created.
func (l *socketListener) inPlace() bool {
	fi, err := os.Lstat(l.path)
	return err == nil && os.SameFile(fi, l.info)
}

// remove deletes the socket file if it is still the one we created.
func (l *socketListener) remove() error {
	if !l.inPlace() {
		return nil
	}
	if err := os.Remove(l.path); err != nil {
		return fmt.Errorf("remove socket: %w", err)
	}
	return nil
}
