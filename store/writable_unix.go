//go:build unix

package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
)

// wOK is access(2)'s W_OK.
const wOK = 2

// notWritable says why this process cannot write the store at path (the
// file, or its directory, where SQLite creates its journal files), nil
// when it can or when the file does not exist yet. access(2) asks the
// kernel, so it is right for root too: root may write a 0444 file, but not
// one on a read-only file system or marked immutable.
func notWritable(path string) error {
	if err := syscall.Access(path, wOK); err != nil {
		if denied(err) {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil // missing, or a directory: OpenSQLite says what is wrong
	}
	dir := filepath.Dir(path)
	if err := syscall.Access(dir, wOK); err != nil && denied(err) {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	return nil
}

func denied(err error) bool {
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS)
}
