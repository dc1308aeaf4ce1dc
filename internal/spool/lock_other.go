//go:build !unix

package spool

import "os"

// lockDir only creates the lock file on systems without flock: a second
// Log on the same directory is not detected there.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
