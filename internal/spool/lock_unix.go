//go:build unix

package spool

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on path (created if needed), held until
// the returned file is closed. Two writers on one spool would interleave
// frames and reuse positions; the kernel drops the lock when a process dies,
// so a crash never leaves the spool locked.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}
