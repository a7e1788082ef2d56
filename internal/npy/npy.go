// Package npy reads and writes float32 NumPy arrays of any rank, with the
// checks and messages the command line needs. It reads the format itself,
// trusting no size in a file before checking it against the bytes present,
// and writes format 1.0 (2.0 for a header too long for it), as numpy.save.
package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/convlens/convlens/internal/atomicfile"
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

// maxHeaderLen is the longest header NumPy itself loads (numpy.load's
// max_header_size).
const maxHeaderLen = 10000

// Decode reads a C-ordered float32 .npy array and its shape. Every size in
// the header is checked against the bytes present before anything is
// allocated for it.
func Decode(r io.Reader) (data []float32, shape []int, err error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, err
	}
	header, body, err := splitHeader(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("not a readable .npy array: %w", err)
	}
	h, err := parseHeader(header)
	if err != nil {
		return nil, nil, fmt.Errorf("not a readable .npy array: malformed header: %w", err)
	}
	if h.descr != "<f4" {
		return nil, nil, fmt.Errorf("dtype is %s; convlens takes float32 (<f4): convert with x.astype(numpy.float32)", h.descr)
	}
	if h.fortran {
		return nil, nil, errors.New("array is Fortran-ordered; save a C-ordered one (numpy.ascontiguousarray)")
	}
	n, err := count(h.shape)
	if err != nil {
		return nil, nil, fmt.Errorf("the .npy array's shape %v: %w", h.shape, err)
	}
	if len(body) != 4*n { // count keeps 4·n within an int.
		return nil, nil, fmt.Errorf("the .npy array's shape %v needs %d values (4 bytes each), the file has %d bytes of data", h.shape, n, len(body))
	}
	data = make([]float32, n)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return data, h.shape, nil
}

// splitHeader checks the magic string and version and splits a .npy file
// into its header text and its data.
func splitHeader(raw []byte) (header, body []byte, err error) {
	const magic = "\x93NUMPY"
	if len(raw) < len(magic)+2 || string(raw[:len(magic)]) != magic {
		return nil, nil, errors.New("no NumPy magic string at the start")
	}
	var n, start int
	switch major, minor := raw[6], raw[7]; {
	case major == 1 && minor == 0 && len(raw) >= 10:
		n, start = int(binary.LittleEndian.Uint16(raw[8:])), 10
	case (major == 2 || major == 3) && minor == 0 && len(raw) >= 12:
		n, start = int(binary.LittleEndian.Uint32(raw[8:])), 12
	case major <= 3 && minor == 0:
		return nil, nil, errors.New("the file ends inside its header length")
	default:
		return nil, nil, fmt.Errorf("format version %d.%d; NumPy writes 1.0, 2.0 and 3.0", major, minor)
	}
	switch {
	case n > len(raw)-start:
		return nil, nil, fmt.Errorf("the header is %d bytes long, the file has %d after its length", n, len(raw)-start)
	case n > maxHeaderLen:
		return nil, nil, fmt.Errorf("the header is %d bytes long, more than the %d NumPy loads", n, maxHeaderLen)
	}
	return raw[start : start+n], raw[start+n:], nil
}

// count is the number of values an array of this shape holds. Like NumPy,
// it refuses a shape whose non-zero dimensions multiply past what memory
// can address, even if another dimension is 0: strides would overflow.
func count(shape []int) (int, error) {
	n, zero := 1, false
	for _, d := range shape {
		switch {
		case d < 0:
			return 0, fmt.Errorf("dimension %d is negative", d)
		case d == 0:
			zero = true
		case n > math.MaxInt/4/d:
			return 0, errors.New("its dimensions multiply past what memory can address")
		default:
			n *= d
		}
	}
	if zero {
		return 0, nil
	}
	return n, nil
}

// WriteFloat32 writes data as a C-ordered float32 array of the given shape,
// atomically (see package atomicfile).
func WriteFloat32(path string, data []float32, shape ...int) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error { return Encode(w, data, shape...) })
}

// Encode writes data as a C-ordered float32 .npy array of the given shape.
func Encode(w io.Writer, data []float32, shape ...int) error {
	n, err := count(shape)
	if err != nil {
		return fmt.Errorf("shape %v: %w", shape, err)
	}
	if n != len(data) {
		return fmt.Errorf("shape %v needs %d values, got %d", shape, n, len(data))
	}
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	header := "{'descr': '<f4', 'fortran_order': False, 'shape': " + tuple + ", }"
	// numpy pads the header with spaces and a newline so that the data
	// starts at a multiple of 64 bytes.
	prefix := 10 // magic, version, 2-byte header length
	version := []byte{1, 0}
	if len(header)+1+prefix+63 > math.MaxUint16 {
		prefix, version = 12, []byte{2, 0} // 4-byte header length
	}
	pad := 63 - (prefix+len(header))%64
	header += strings.Repeat(" ", pad) + "\n"
	out := append([]byte("\x93NUMPY"), version...)
	if prefix == 10 {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(header)))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(header)))
	}
	out = append(out, header...)
	if _, err := w.Write(out); err != nil {
		return err
	}
	buf := make([]byte, 0, 4*min(len(data), 1<<16))
	for start := 0; start < len(data); start += 1 << 16 {
		buf = buf[:0]
		for _, v := range data[start:min(start+1<<16, len(data))] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
