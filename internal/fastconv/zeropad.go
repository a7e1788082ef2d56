package fastconv

import (
	"slices"

	"github.com/gomlx/compute"
)

// GoMLX differentiates a window sum by padding the output gradient with zeros
// and summing windows over that: for the 7x7 global average pool of a CNN, a
// 7x7 sum over a 1x1 gradient padded to 7x7. The decorated functions note the
// Pads with zeros they build, so that a window sum over one can fold the Pad
// into its own padding (foldZeroPadding) and see that each window meets a
// single element (broadcastWindow in pool.go).

// zeroPad is a Pad with zeros: its operand and configuration.
type zeroPad struct {
	x      compute.Value
	config []compute.PadAxis
}

// Constant implements compute.Function, noting scalar zeros.
func (f *function) Constant(flat any, dims ...int) (compute.Value, error) {
	v, err := f.Function.Constant(flat, dims...)
	if err == nil && len(dims) == 0 {
		switch flat := flat.(type) {
		case []float32:
			f.noteZero(v, len(flat) == 1 && flat[0] == 0)
		case []float64:
			f.noteZero(v, len(flat) == 1 && flat[0] == 0)
		}
	}
	return v, err
}

func (f *function) noteZero(v compute.Value, zero bool) {
	if !zero {
		return
	}
	if f.zeros == nil {
		f.zeros = map[compute.Value]bool{}
	}
	f.zeros[v] = true
}

// Pad implements compute.Function, noting paddings with zeros.
func (f *function) Pad(x, fill compute.Value, config ...compute.PadAxis) (compute.Value, error) {
	v, err := f.Function.Pad(x, fill, config...)
	if err == nil && f.zeros[fill] {
		if f.zeroPadded == nil {
			f.zeroPadded = map[compute.Value]zeroPad{}
		}
		f.zeroPadded[v] = zeroPad{x, slices.Clone(config)}
	}
	return v, err
}

// foldZeroPadding returns the operand and the paddings of a window sum over x that give
// the same result without the Pad with zeros that built x, if any and if that Pad only
// adds zeros around its operand (no negative padding, interior padding only on axes of
// one element). GoMLX builds the gradient of a window sum that way: the gradient of a
// global average pool becomes a 7x7 sum over a 1x1 gradient padded to 7x7, which
// broadcastWindow then covers.
func (f *function) foldZeroPadding(x compute.Value, paddings [][2]int) (compute.Value, [][2]int) {
	pad, ok := f.zeroPadded[x]
	if !ok {
		return x, paddings
	}
	s, err := f.Function.Shape(pad.x)
	if err != nil || len(pad.config) != s.Rank() || (paddings != nil && len(paddings) != s.Rank()) {
		return x, paddings
	}
	folded := make([][2]int, s.Rank())
	for a, c := range pad.config {
		if c.Start < 0 || c.End < 0 || (c.Interior != 0 && s.Dimensions[a] != 1) {
			return x, paddings
		}
		folded[a] = [2]int{c.Start, c.End}
		if paddings != nil {
			folded[a][0] += paddings[a][0]
			folded[a][1] += paddings[a][1]
		}
	}
	return pad.x, folded
}
