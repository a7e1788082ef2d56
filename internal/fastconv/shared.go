package fastconv

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
	"weak"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// Weights are constants of convlens' graphs, and the backend copies every constant
// into the graph that uses it; its matrix products then keep a packed copy of each
// constant operand, forward and backward. A model's weights were so held two or three
// times per compiled graph, on top of the model's own copy: VGG-11's 531 MB of weights
// took its Grad-CAM process to 2.4 GB, more than PyTorch's.
//
// Large constants are instead held once per backend: the main function of a graph
// takes each one as an extra parameter, fed at every execution from a buffer that all
// graphs given the same values share. A constant is recognised by its storage (GoMLX
// passes a tensor's own slice) and confirmed by comparing its bytes, so a slice whose
// values changed, or new values at a recycled address, never reuse a stale buffer.
// When that storage is itself a shared buffer of this backend (a tensor moved to the
// backend with Tensor.ToDevice, as models.NewRunner does with large weights), graphs
// feed that very buffer, and the weights exist once in the whole process.
//
// Only large constants go this way, because the matrix product repacks an operand
// that is not constant on every call. For the fully connected layers of VGG and
// AlexNet, the largest weights there are, that is the price of holding them once
// instead of three times per graph (VGG-11 Grad-CAM at batch 1: 0.26 s before,
// 0.35-0.43 s after, for 2.4 GB → 1.7 GB of peak RSS); a convolution kernel, small
// and reused at every position, keeps its packed copy.

// SharedMinBytes is the size from which a float constant of a main function is held
// once per backend (VGG-11's first two fully connected layers, 411 and 67 MB; the
// largest convolution kernels of torchvision's CNNs are under 10 MB).
const SharedMinBytes = 16 << 20

// sharedKey identifies a constant's storage: its first element's address, length and
// type. The address is a number, not a pointer, so that the key keeps nothing alive.
type sharedKey struct {
	data  uintptr
	n     int
	dtype dtypes.DType
}

func keyOf(b []byte, dtype dtypes.DType) sharedKey {
	return sharedKey{data: uintptr(unsafe.Pointer(&b[0])), n: len(b), dtype: dtype}
}

// sharedBuffer is a large constant's values in one backend buffer. The executables
// that feed it and, for a buffer made by NewSharedBuffer, its owner hold it; refs
// counts those that will say when they are done (Finalize), and the last one frees
// the buffer at once. A holder dropped without a word leaves the buffer to the garbage
// collector, like any other buffer of the pure-Go backend.
type sharedBuffer struct {
	buf   compute.Buffer // on the wrapped backend
	bytes []byte         // buf's storage
	key   sharedKey
	refs  int
}

// sharedBuffers are the large constants a backend holds, by storage. It points to
// them weakly: their holders keep them alive.
type sharedBuffers struct {
	mu      sync.Mutex
	entries map[sharedKey]weak.Pointer[sharedBuffer]
}

// lookup returns the live buffer noted under k, if any. s.mu must be held.
func (s *sharedBuffers) lookup(k sharedKey) *sharedBuffer {
	if wp, ok := s.entries[k]; ok {
		if e := wp.Value(); e != nil {
			return e
		}
		delete(s.entries, k)
	}
	return nil
}

// note records e under its key. s.mu must be held.
func (s *sharedBuffers) note(e *sharedBuffer) {
	s.entries[e.key] = weak.Make(e)
	runtime.AddCleanup(e, s.forget, e.key)
}

// forget drops the entry under k if its buffer is gone.
func (s *sharedBuffers) forget(k sharedKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookup(k)
}

// register notes a buffer that NewSharedBuffer made, with its owner as first holder,
// if it is large enough to hold a constant; nil otherwise.
func (s *sharedBuffers) register(buf compute.Buffer, flat any, minBytes int) *sharedBuffer {
	b, dtype := floatBytes(flat)
	if len(b) == 0 || len(b) < minBytes {
		return nil
	}
	e := &sharedBuffer{buf: buf, bytes: b, key: keyOf(b, dtype), refs: 1}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.note(e)
	return e
}

// sharedInput is a large constant that a main function takes as its parameter number
// index.
type sharedInput struct {
	index int
	key   sharedKey
	bytes []byte // the constant's values, read only while the graph is compiled
	shape shapes.Shape
}

// sharedParams tracks a main function's parameters: GoMLX's and the large constants
// made parameters, numbered together in the order they were created.
type sharedParams struct {
	minBytes int
	count    int
	inputs   []sharedInput
}

// floatBytes returns a float32 or float64 slice's storage, or nil for other types.
func floatBytes(flat any) ([]byte, dtypes.DType) {
	switch s := flat.(type) {
	case []float32:
		if len(s) > 0 {
			return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*4), dtypes.Float32
		}
	case []float64:
		if len(s) > 0 {
			return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*8), dtypes.Float64
		}
	}
	return nil, dtypes.InvalidDType
}

// parameter makes a large constant a parameter of fn, or returns false if flat is not
// one.
func (p *sharedParams) parameter(fn compute.Function, flat any, dims []int) (compute.Value, bool, error) {
	b, dtype := floatBytes(flat)
	if len(b) == 0 || len(b) < p.minBytes {
		return nil, false, nil
	}
	shape := shapes.Make(dtype, dims...)
	if shape.ByteSize() != int64(len(b)) {
		return nil, false, nil // the backend's Constant reports the mismatch
	}
	v, err := fn.Parameter(fmt.Sprintf("convlens_shared_constant_%d", len(p.inputs)), shape, nil)
	if err != nil {
		return nil, false, err
	}
	p.inputs = append(p.inputs, sharedInput{index: p.count, key: keyOf(b, dtype), bytes: b, shape: shape})
	p.count++
	return v, true, nil
}

// acquire returns the buffers of a compiled function's large constants, in the order
// of inputs, creating those the backend does not hold yet. Each must be released once.
func (s *sharedBuffers) acquire(b compute.Backend, inputs []sharedInput) ([]*sharedBuffer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*sharedBuffer, 0, len(inputs))
	for _, in := range inputs {
		e := s.lookup(in.key)
		if e == nil || !bytes.Equal(e.bytes, in.bytes) {
			noted := e != nil
			buf, flat, err := b.NewSharedBuffer(0, in.shape)
			if err != nil {
				_ = s.releaseLocked(out) // the error that matters is err
				return nil, fmt.Errorf("fastconv: holding a constant of shape %s: %w", in.shape, err)
			}
			stored, _ := floatBytes(flat)
			copy(stored, in.bytes)
			e = &sharedBuffer{buf: buf, bytes: stored, key: in.key}
			if !noted {
				// A slice whose values changed keeps its entry for the executables
				// that feed the old values; the new ones are held for this one alone.
				s.note(e)
			}
		}
		e.refs++
		out = append(out, e)
	}
	return out, nil
}

// release gives back buffers from acquire or register; the last holder frees each.
func (s *sharedBuffers) release(bufs ...*sharedBuffer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.releaseLocked(bufs)
}

func (s *sharedBuffers) releaseLocked(bufs []*sharedBuffer) error {
	var first error
	for _, e := range bufs {
		e.refs--
		if e.refs > 0 {
			continue
		}
		if s.lookup(e.key) == e {
			delete(s.entries, e.key)
		}
		if err := e.buf.Finalize(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
