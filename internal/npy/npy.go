// Package npy reads and writes float32 NumPy arrays of any rank through
// github.com/sbinet/npyio, with the checks and messages the command line needs.
package npy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"unsafe"

	"github.com/sbinet/npyio"
)

// ReadFloat32 reads a C-ordered float32 array and its shape.
func ReadFloat32(path string) (data []float32, shape []int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r, err := npyio.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is not a readable .npy file: %w", path, err)
	}
	d := r.Header.Descr
	if d.Type != "<f4" {
		return nil, nil, fmt.Errorf("%s holds dtype %s; convlens takes float32 (<f4): convert with x.astype(numpy.float32)", path, d.Type)
	}
	if d.Fortran {
		return nil, nil, fmt.Errorf("%s is Fortran-ordered; save a C-ordered array (numpy.ascontiguousarray)", path)
	}
	if err := r.Read(&data); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	n := 1
	for _, s := range d.Shape {
		n *= s
	}
	if len(data) != n {
		return nil, nil, fmt.Errorf("%s is truncated: shape %v needs %d values, it has %d", path, d.Shape, n, len(data))
	}
	return data, d.Shape, nil
}

// WriteFloat32 writes data as a C-ordered float32 array of the given shape.
// It writes a temporary file beside path and renames it, so a failure leaves
// no half-written file.
func WriteFloat32(path string, data []float32, shape ...int) error {
	n := 1
	t := reflect.TypeFor[float32]()
	for i := len(shape) - 1; i >= 0; i-- {
		n *= shape[i]
		t = reflect.ArrayOf(shape[i], t)
	}
	if n != len(data) {
		return fmt.Errorf("writing %s: shape %v needs %d values, got %d", path, shape, n, len(data))
	}
	// A Go array of arrays is contiguous, so the flat data fills it directly;
	// npyio then writes it with its shape.
	arr := reflect.New(t)
	if n > 0 {
		copy(unsafe.Slice((*float32)(arr.UnsafePointer()), n), data)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".convlens-*.npy")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	err = npyio.Write(tmp, arr.Interface())
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
