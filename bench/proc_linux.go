package main

import (
	"io/fs"
	"syscall"
)

// blocksOf returns the 512-byte blocks allocated to a file.
func blocksOf(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks
	}
	return info.Size() / 512
}
