package fastconv

import (
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// The pure-Go backend broadcasts the operands of a binary op quickly when the smaller one
// varies only along leading axes ([1, 1, W] against [N, H, W]) or only along trailing ones
// ([N, C, 1, 1] against [N, C, H, W]), and element by element through a generic index
// iterator otherwise. CNNs in NCHW add biases and batch-norm shifts as [1, C, 1, 1]: at
// batch 1 that is the trailing case, at batch 8 it is not, and the iterator made those ops
// a third of a DenseNet-121 Grad-CAM. Materialising the small operand along its leading
// axes, [1, C, 1, 1] to [N, C, 1, 1] (N·C elements), turns it into the trailing case.

// maxBroadcastFraction bounds the size of a materialised operand, as a fraction of the
// op's output.
const maxBroadcastFraction = 8

func (f *function) Add(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Add, lhs, rhs)
}

func (f *function) Sub(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Sub, lhs, rhs)
}

func (f *function) Mul(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Mul, lhs, rhs)
}

func (f *function) Div(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Div, lhs, rhs)
}

func (f *function) Max(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Max, lhs, rhs)
}

func (f *function) Min(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Min, lhs, rhs)
}

func (f *function) Pow(lhs, rhs compute.Value) (compute.Value, error) {
	return f.binary(f.Function.Pow, lhs, rhs)
}

// binary applies op after making a slowly broadcast operand a trailing one.
func (f *function) binary(op func(lhs, rhs compute.Value) (compute.Value, error), lhs, rhs compute.Value) (compute.Value, error) {
	ls, err := f.Function.Shape(lhs)
	if err != nil {
		return op(lhs, rhs) // The wrapped op reports the error.
	}
	rs, err := f.Function.Shape(rhs)
	if err != nil {
		return op(lhs, rhs)
	}
	switch {
	case ls.Rank() != rs.Rank() || ls.IsDynamic() || rs.IsDynamic() || slices.Equal(ls.Dimensions, rs.Dimensions):
	case broadcastsTo(rs, ls):
		if rhs, err = f.trailing(rhs, rs, ls.Dimensions); err != nil {
			return nil, err
		}
	case broadcastsTo(ls, rs):
		if lhs, err = f.trailing(lhs, ls, rs.Dimensions); err != nil {
			return nil, err
		}
	}
	return op(lhs, rhs)
}

// broadcastsTo reports whether small broadcasts to big: each axis has big's size or 1.
func broadcastsTo(small, big shapes.Shape) bool {
	for a, d := range small.Dimensions {
		if d != 1 && d != big.Dimensions[a] {
			return false
		}
	}
	return true
}

// trailing returns x, of shape s that broadcasts to the dimensions out, unchanged if the
// backend broadcasts it quickly, and otherwise broadcast to out's dimensions up to its last
// axis of size > 1, so that only trailing axes of size 1 are left to broadcast.
func (f *function) trailing(x compute.Value, s shapes.Shape, out []int) (compute.Value, error) {
	first := slices.IndexFunc(s.Dimensions, func(d int) bool { return d > 1 })
	if first < 0 {
		return x, nil // A scalar in effect.
	}
	last := len(s.Dimensions) - 1
	for s.Dimensions[last] == 1 {
		last--
	}
	leading := slices.Equal(s.Dimensions[first:], out[first:])
	trailing := slices.Equal(s.Dimensions[:last+1], out[:last+1])
	if leading || trailing {
		return x, nil
	}
	target := slices.Clone(out)
	size, outSize := 1, 1
	for a := range target {
		if a > last {
			target[a] = 1
		}
		size *= target[a]
		outSize *= out[a]
	}
	if size*maxBroadcastFraction > outSize {
		return x, nil
	}
	// Squeeze x first: the backend folds a broadcast between equal ranks back into the
	// binary op.
	var squeezed, axes []int
	for a, d := range s.Dimensions {
		if d > 1 {
			squeezed = append(squeezed, d)
			axes = append(axes, a)
		}
	}
	x, err := f.Function.Reshape(x, squeezed...)
	if err != nil {
		return nil, err
	}
	return f.Function.BroadcastInDim(x, shapes.Make(s.DType, target...), axes)
}
