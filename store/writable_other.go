//go:build !unix

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// notWritable says why this process cannot write the store at path, nil
// when it can or when the file does not exist yet. Opening the file for
// writing (and closing it at once) writes nothing.
func notWritable(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	_ = f.Close()
	return nil
}
