//go:build !linux

package spool

import "os"

// datasync makes the data written to f durable. The standard library offers
// fdatasync only on Linux; elsewhere this is a full fsync (F_FULLFSYNC on
// macOS), which is correct, only slower.
func datasync(f *os.File) error { return f.Sync() }
