package fastconv

import (
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// Weights are constants of the graphs convlens builds, and a backward pass
// rearranges them on every call: GoMLX reverses each kernel spatially for the
// gradient with respect to a convolution's input, and the lowering then
// transposes it to the layout its matrix product wants. On ResNet-18, Reverse
// and these Transposes took half of an early-layer Grad-CAM. folding computes
// Reverse and Transpose of a constant once, when the graph is built, and hands
// the backend the result as a constant; Reshape of a constant stays a Reshape,
// whose result is known to be constant too.

// folding decorates a compute.Function: Reverse and Transpose of constants
// (float32, float64) become constants.
type folding struct {
	compute.Function
	consts map[compute.Value]constant
	// shared, in a main function only, makes large constants parameters (shared.go).
	shared *sharedParams
	// folded counts the bytes of the values folded, which the backend copied:
	// garbage once the graph is compiled.
	folded int
}

// constant is a constant's row-major values ([]float32 or []float64) and dimensions.
// flat is the slice the caller gave Constant, not a copy: GoMLX passes a tensor's own
// storage, which outlives the building of the graph, and folding reads it only then.
type constant struct {
	flat any
	dims []int
}

// maxFolded bounds the size of a folded constant (elements): larger ones are left to
// the backend, so that building a graph never holds more than one such copy at a time
// beyond the model's own.
const maxFolded = 1 << 26

// release forgets the constants: the backend holds its own copies, and the
// folded values would otherwise be held twice for the executable's lifetime.
func (f *folding) release() { f.consts = map[compute.Value]constant{} }

// Parameter implements compute.Function, numbering the parameters of a main function.
func (f *folding) Parameter(name string, shape shapes.Shape, sharding *compute.ShardingSpec) (compute.Value, error) {
	v, err := f.Function.Parameter(name, shape, sharding)
	if err == nil && f.shared != nil {
		f.shared.count++
	}
	return v, err
}

// Constant implements compute.Function: a large constant of a main function becomes a
// parameter (shared.go); other float constants are noted.
func (f *folding) Constant(flat any, dims ...int) (compute.Value, error) {
	if f.shared != nil {
		if v, ok, err := f.shared.parameter(f.Function, flat, dims); ok || err != nil {
			return v, err
		}
	}
	return f.constant(flat, dims)
}

// constant makes flat a constant of the backend's and notes it if it is a float one.
func (f *folding) constant(flat any, dims []int) (compute.Value, error) {
	v, err := f.Function.Constant(flat, dims...)
	if err == nil {
		switch flat.(type) {
		case []float32, []float64:
			f.consts[v] = constant{flat: flat, dims: slices.Clone(dims)}
		}
	}
	return v, err
}

// Reshape implements compute.Function: the reshape of a constant is noted as one.
func (f *folding) Reshape(x compute.Value, dims ...int) (compute.Value, error) {
	v, err := f.Function.Reshape(x, dims...)
	if c, ok := f.consts[x]; ok && err == nil {
		f.consts[v] = constant{flat: c.flat, dims: slices.Clone(dims)}
	}
	return v, err
}

// Transpose implements compute.Function, folding constants.
func (f *folding) Transpose(x compute.Value, perm ...int) (compute.Value, error) {
	c, ok := f.consts[x]
	if !ok || len(perm) != len(c.dims) || size(c.dims) > maxFolded {
		return f.Function.Transpose(x, perm...)
	}
	in := rowStrides(c.dims)
	dims, strides := make([]int, len(perm)), make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(c.dims) {
			return f.Function.Transpose(x, perm...) // the backend reports the error
		}
		dims[i], strides[i] = c.dims[p], in[p]
	}
	return f.fold(c, dims, 0, strides)
}

// Reverse implements compute.Function, folding constants.
func (f *folding) Reverse(x compute.Value, axes ...int) (compute.Value, error) {
	c, ok := f.consts[x]
	if !ok || size(c.dims) > maxFolded {
		return f.Function.Reverse(x, axes...)
	}
	strides := rowStrides(c.dims)
	base := 0
	for _, a := range axes {
		if a < 0 || a >= len(c.dims) || strides[a] < 0 {
			return f.Function.Reverse(x, axes...) // out of range or repeated: the backend's call
		}
		base += (c.dims[a] - 1) * strides[a]
		strides[a] = -strides[a]
	}
	return f.fold(c, slices.Clone(c.dims), base, strides)
}

// fold makes the constant whose element at coordinates o is c's at base + Σ o_k·strides_k.
func (f *folding) fold(c constant, dims []int, base int, strides []int) (compute.Value, error) {
	var flat any
	switch src := c.flat.(type) {
	case []float32:
		flat = gatherStrided(src, dims, base, strides)
	case []float64:
		flat = gatherStrided(src, dims, base, strides)
	}
	f.folded += size(dims) * c.itemSize()
	return f.constant(flat, dims)
}

// itemSize is the size of one of c's values in bytes.
func (c constant) itemSize() int {
	if _, ok := c.flat.([]float64); ok {
		return 8
	}
	return 4
}

// gatherStrided reads src at base + Σ o_k·strides_k for every coordinate o of dims, in
// row-major order, the innermost axis in one loop.
func gatherStrided[T any](src []T, dims []int, base int, strides []int) []T {
	out := make([]T, size(dims))
	if len(out) == 0 {
		return out
	}
	if len(dims) == 0 {
		out[0] = src[base]
		return out
	}
	last := len(dims) - 1
	inner, step := dims[last], strides[last]
	idx := make([]int, last)
	off := base
	for o := 0; o < len(out); o += inner {
		p := off
		for i := range inner {
			out[o+i] = src[p]
			p += step
		}
		// Next row: advance the outer coordinates like an odometer.
		for k := last - 1; k >= 0; k-- {
			idx[k]++
			off += strides[k]
			if idx[k] < dims[k] {
				break
			}
			off -= idx[k] * strides[k]
			idx[k] = 0
		}
	}
	return out
}

func rowStrides(dims []int) []int {
	s := make([]int, len(dims))
	n := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = n
		n *= dims[i]
	}
	return s
}

func size(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
