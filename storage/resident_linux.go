package storage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// dropResident removes the n bytes of a shared file mapping at addr from
// the process's page tables (madvise MADV_DONTNEED). The pages stay in the
// page cache: a later read maps them again without reading the disk. addr
// is the start of bbolt's mapping, not memory of Go's, so it is passed to
// the system call as a number and never converted to a pointer.
func dropResident(addr uintptr, n int64) error {
	if addr == 0 || n <= 0 {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(n), unix.MADV_DONTNEED)
	if errno != 0 {
		return fmt.Errorf("madvise %d bytes: %w", n, errno)
	}
	return nil
}
