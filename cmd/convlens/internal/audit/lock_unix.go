//go:build unix

package audit

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive lock on the results file, so that two runs never
// append to one file at once; closing the file releases it.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errors.New("another convlens audit is writing it; wait for it to end")
	}
	return err
}
