// Package npy reads and writes float32 NumPy arrays of any rank through
// github.com/sbinet/npyio, with the checks and messages the command line needs.
package npy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"unsafe"

	"github.com/sbinet/npyio"
)

// ReadFloat32 reads a C-ordered float32 array and its shape from a file.
func ReadFloat32(path string) (data []float32, shape []int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, shape, err = Decode(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, shape, nil
}

// Decode reads a C-ordered float32 .npy array and its shape.
func Decode(r io.Reader) (data []float32, shape []int, err error) {
	// npyio panics on some malformed headers (a missing 'shape' key, say).
	defer func() {
		if p := recover(); p != nil {
			data, shape, err = nil, nil, fmt.Errorf("not a readable .npy array: malformed header (%v)", p)
		}
	}()
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, err
	}
	br := bytes.NewReader(raw)
	nr, err := npyio.NewReader(br)
	if err != nil {
		return nil, nil, fmt.Errorf("not a readable .npy array: %w", err)
	}
	d := nr.Header.Descr
	if d.Type != "<f4" {
		return nil, nil, fmt.Errorf("dtype is %s; convlens takes float32 (<f4): convert with x.astype(numpy.float32)", d.Type)
	}
	if d.Fortran {
		return nil, nil, errors.New("array is Fortran-ordered; save a C-ordered one (numpy.ascontiguousarray)")
	}
	n := 1
	for _, s := range d.Shape {
		n *= s
	}
	// npyio does not notice a short or long body, so check its size here.
	if br.Len() != 4*n {
		return nil, nil, fmt.Errorf("the .npy array's shape %v needs %d bytes of data, the file has %d", d.Shape, 4*n, br.Len())
	}
	if err := nr.Read(&data); err != nil {
		return nil, nil, fmt.Errorf("reading .npy data: %w", err)
	}
	return data, d.Shape, nil
}

// WriteFloat32 writes data as a C-ordered float32 array of the given shape.
// It writes a temporary file beside path and renames it, so a failure leaves
// no half-written file.
func WriteFloat32(path string, data []float32, shape ...int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".convlens-*.npy")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	err = Encode(tmp, data, shape...)
	err = errors.Join(err, tmp.Close(), os.Chmod(tmp.Name(), 0o644)) // CreateTemp makes it 0600.
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Encode writes data as a C-ordered float32 .npy array of the given shape.
func Encode(w io.Writer, data []float32, shape ...int) error {
	n := 1
	t := reflect.TypeFor[float32]()
	for i := len(shape) - 1; i >= 0; i-- {
		n *= shape[i]
		t = reflect.ArrayOf(shape[i], t)
	}
	if n != len(data) {
		return fmt.Errorf("shape %v needs %d values, got %d", shape, n, len(data))
	}
	// A Go array of arrays is contiguous, so the flat data fills it directly;
	// npyio then writes it with its shape.
	arr := reflect.New(t)
	if n > 0 {
		copy(unsafe.Slice((*float32)(arr.UnsafePointer()), n), data)
	}
	return npyio.Write(w, arr.Interface())
}
