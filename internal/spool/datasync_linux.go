//go:build linux

package spool

import (
	"os"
	"runtime"
	"syscall"
)

// datasync makes the data written to f durable with fdatasync(2). A segment
// is preallocated and then only overwritten in place, so its size and block
// map never change and fdatasync can skip the inode update (mtime) that
// fsync would commit to the file-system journal, which is most of an
// fsync's cost on ext4 and XFS. fdatasync still flushes a change of size or
// allocation, so it stays correct when a record larger than a segment
// extends the file.
//
// Fd does not switch a regular file to blocking mode (it was never in the
// poller), and only the writer goroutine uses the active file, so the
// descriptor cannot be closed under the call.
func datasync(f *os.File) error {
	fd := int(f.Fd())
	var err error
	for {
		if err = syscall.Fdatasync(fd); err != syscall.EINTR {
			break
		}
	}
	runtime.KeepAlive(f)
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}
