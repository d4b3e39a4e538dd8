//go:build linux || darwin || freebsd || netbsd || openbsd

package dispatch

import (
	"net"
	"syscall"
)

// prober tells whether an idle connection is still open and quiet: the
// server has neither closed it nor sent anything unasked. It peeks at the
// socket without waiting. Made once per connection, it allocates nothing
// per check.
type prober struct {
	rc   syscall.RawConn // nil: not a socket, nothing to ask
	buf  [1]byte
	open bool
	peek func(fd uintptr) bool
}

func newProber(conn net.Conn) *prober {
	p := &prober{}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.peek = p.peekFD
	return p
}

// alive reports whether the connection is open and nothing waits on it.
func (p *prober) alive() bool {
	if p.rc == nil {
		return true
	}
	p.open = false
	err := p.rc.Read(p.peek)
	return err == nil && p.open
}

func (p *prober) peekFD(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			p.open = true // nothing to read: open and quiet
		}
		// Otherwise 0 bytes is the server's close, 1 byte something it
		// should not have sent, and an error an error.
		return true
	}
}
