package mnistdata

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// IDX is an array read from a file in the IDX format, the format the MNIST
// files are distributed in (http://yann.lecun.com/exdb/mnist/):
//
//	bytes 0-1: zero
//	byte  2:   element type, 0x08 for unsigned bytes (the only type read here)
//	byte  3:   number of dimensions, d
//	then d big-endian uint32 dimension sizes, then the elements in row-major order.
//
// So MNIST images have the magic number 0x00000803 (uint8, 3 dimensions:
// count, rows, columns) and labels 0x00000801 (uint8, 1 dimension: count).
type IDX struct {
	// Dims are the dimension sizes, outermost first.
	Dims []int
	// Data holds the elements in row-major order.
	Data []uint8
}

// idxUint8 is the IDX type code for unsigned bytes.
const idxUint8 = 0x08

// maxIDXElements bounds what a header may announce, so a corrupt header
// cannot make the reader allocate without limit.
const maxIDXElements = 1 << 30

// ReadIDX reads an IDX array of unsigned bytes from r. A gzip-compressed
// stream (the usual distribution form, "*.gz") is recognised by its magic
// bytes and decompressed on the fly. Trailing bytes after the data are an error.
func ReadIDX(r io.Reader) (*IDX, error) {
	br := bufio.NewReader(r)
	if head, err := br.Peek(2); err == nil && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("idx: gzip: %w", err)
		}
		defer zr.Close()
		return readIDX(bufio.NewReader(zr))
	}
	return readIDX(br)
}

func readIDX(r *bufio.Reader) (*IDX, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("idx: reading the magic number: %w", noEOF(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("idx: bad magic number %#08x: it must start with two zero bytes", binary.BigEndian.Uint32(magic[:]))
	}
	if magic[2] != idxUint8 {
		return nil, fmt.Errorf("idx: element type %#02x is not supported (only unsigned bytes, 0x08)", magic[2])
	}
	rank := int(magic[3])
	if rank == 0 {
		return nil, errors.New("idx: zero dimensions")
	}
	dims := make([]int, rank)
	total := 1
	for i := range dims {
		var d [4]byte
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return nil, fmt.Errorf("idx: reading dimension %d of %d: %w", i+1, rank, noEOF(err))
		}
		dims[i] = int(binary.BigEndian.Uint32(d[:]))
		if dims[i] > 0 && total > maxIDXElements/dims[i] {
			return nil, fmt.Errorf("idx: dimensions %v announce more than %d elements", dims[:i+1], maxIDXElements)
		}
		total *= dims[i]
	}
	data := make([]uint8, total)
	if n, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("idx: dimensions %v need %d data bytes, got %d: %w", dims, total, n, noEOF(err))
	}
	if _, err := r.ReadByte(); err == nil {
		return nil, fmt.Errorf("idx: trailing bytes after the %d data bytes of dimensions %v", total, dims)
	} else if err != io.EOF {
		return nil, fmt.Errorf("idx: %w", err)
	}
	return &IDX{Dims: dims, Data: data}, nil
}

// WriteIDX writes a as an uncompressed IDX array of unsigned bytes.
func WriteIDX(w io.Writer, a *IDX) error {
	if len(a.Dims) == 0 || len(a.Dims) > 255 {
		return fmt.Errorf("idx: cannot write %d dimensions", len(a.Dims))
	}
	total := 1
	for _, d := range a.Dims {
		total *= d
	}
	if total != len(a.Data) {
		return fmt.Errorf("idx: dimensions %v need %d elements, have %d", a.Dims, total, len(a.Data))
	}
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, idxUint8, byte(len(a.Dims))})
	for _, d := range a.Dims {
		_ = binary.Write(&buf, binary.BigEndian, uint32(d))
	}
	buf.Write(a.Data)
	_, err := w.Write(buf.Bytes())
	return err
}

// noEOF turns a bare EOF (the stream ended where more was expected) into ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
