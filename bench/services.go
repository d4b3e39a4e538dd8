package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// service is a database server the bench started on loopback, with its
// data in a directory of its own.
type service struct {
	cmd  *exec.Cmd
	port int
	// sockDir is Postgres's unix socket directory.
	sockDir string
}

// pid returns the server's process ID.
func (s *service) pid() int { return s.cmd.Process.Pid }

// stop stops the server: SIGTERM for Redis, SIGINT (fast shutdown) for
// Postgres.
func (s *service) stop(sig syscall.Signal) error {
	if s == nil || s.cmd == nil {
		return nil
	}
	err := stopProcess(s.cmd, sig, 30*time.Second)
	s.cmd = nil
	return err
}

// startRedis starts redis-server on a free loopback port with its files in
// dir and no snapshots. fsync is its appendfsync (always or everysec), or
// "no" for no append-only file at all.
func startRedis(ctx context.Context, dir, fsync string) (*service, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install -y redis-server): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log")}
	if fsync == "no" {
		args = append(args, "--appendonly", "no")
	} else {
		args = append(args, "--appendonly", "yes", "--appendfsync", fsync)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis: %w", err)
	}
	s := &service{cmd: cmd, port: port}
	err = waitReady(ctx, 20*time.Second, func() error {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+PONG") {
			return fmt.Errorf("redis answered %q", line)
		}
		return nil
	})
	if err != nil {
		_ = s.stop(syscall.SIGKILL)
		return nil, fmt.Errorf("start redis: %w", err)
	}
	return s, nil
}

// addr returns the server's host:port.
func (s *service) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// postgresBin finds the directory of Postgres's server binaries.
func postgresBin() (string, error) {
	for _, d := range []string{os.Getenv("PG_BIN"), "/usr/local/bin", "/usr/lib/postgresql/17/bin",
		"/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb not found (apt-get install -y postgresql, or set PG_BIN)")
}

// postgresSettings are the server settings, as printed: fsync and
// synchronous_commit at their durable defaults.
const postgresSettings = "fsync=on synchronous_commit=on full_page_writes=on"

// startPostgres creates a cluster in dir and starts it on a free loopback
// port, with its socket in dir too. Postgres refuses to run as root, so
// when the bench is root it runs as the user postgres (or nobody).
func startPostgres(ctx context.Context, dir string) (*service, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "pgdata")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 5))
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &service{cmd: cmd, port: port, sockDir: dir}
	err = waitReady(ctx, 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		_ = s.stop(syscall.SIGKILL)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return s, nil
}

// postgresCredential returns the user Postgres runs as, with dir made
// theirs, or nil when the bench is not root.
func postgresCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("no user to run postgres as: %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	// The user must be able to pass through the bench's own directories
	// above dir: the system's and the run's.
	for d, i := filepath.Dir(dir), 0; i < 2; d, i = filepath.Dir(d), i+1 {
		if info, err := os.Stat(d); err == nil && info.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(d, info.Mode().Perm()|0o011)
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
