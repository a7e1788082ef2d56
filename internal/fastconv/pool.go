package fastconv

import (
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
)

// maxWindowPositions bounds the shifted slices a window reduction is lowered
// to; larger windows that are not global go to the wrapped backend.
const maxWindowPositions = 64

// ReduceWindow lowers pooling onto plain ops, which the pure-Go backend runs
// much faster than its generic window loop (in a ResNet-18 Grad-CAM that loop
// took 60% of the time: the stem's max-pool and the global average pool's
// gradient): a global window becomes one reduction over its axes, a small
// one the combination of its shifted, strided slices. Dilated windows and
// other dtypes go to the wrapped backend.
func (f *function) ReduceWindow(x compute.Value, op compute.ReduceOpType,
	window, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, error) {
	if v, ok, err := reduceWindow(f.Function, x, op, window, strides, inputDilations, windowDilations, paddings); ok || err != nil {
		return v, err
	}
	return f.Function.ReduceWindow(x, op, window, strides, inputDilations, windowDilations, paddings)
}

// reduceWindow returns ok=false when it does not cover the configuration.
func reduceWindow(f compute.Function, x compute.Value, op compute.ReduceOpType,
	window, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, bool, error) {
	s, err := f.Shape(x)
	if err != nil || (s.DType != dtypes.Float32 && s.DType != dtypes.Float64) || !allOnes(inputDilations) || !allOnes(windowDilations) {
		return nil, false, nil
	}
	rank := s.Rank()
	if len(window) != rank || (strides != nil && len(strides) != rank) || (paddings != nil && len(paddings) != rank) {
		return nil, false, nil
	}
	var fill float64
	switch op {
	case compute.ReduceOpSum:
	case compute.ReduceOpMax:
		fill = math.Inf(-1)
	case compute.ReduceOpMin:
		fill = math.Inf(1)
	default:
		return nil, false, nil
	}
	padded, out := make([]int, rank), make([]int, rank)
	positions, global := 1, true
	pads := make([]compute.PadAxis, rank)
	for a, d := range s.Dimensions {
		stride := window[a]
		if strides != nil {
			stride = strides[a]
		}
		var lo, hi int
		if paddings != nil {
			lo, hi = paddings[a][0], paddings[a][1]
		}
		padded[a] = d + lo + hi
		if d <= 0 || lo < 0 || hi < 0 || stride < 1 || window[a] < 1 || padded[a] < window[a] {
			return nil, false, nil
		}
		pads[a] = compute.PadAxis{Start: lo, End: hi}
		out[a] = (padded[a]-window[a])/stride + 1
		positions *= window[a]
		global = global && (window[a] == 1 || (window[a] == padded[a] && out[a] == 1))
	}
	if !global && positions > maxWindowPositions {
		return nil, false, nil
	}
	if padded := !slicesAllZero(paddings); padded {
		fillValue, err := scalar(f, s.DType, fill)
		if err != nil {
			return nil, true, err
		}
		if x, err = f.Pad(x, fillValue, pads...); err != nil {
			return nil, true, err
		}
	}
	if global {
		var axes []int
		for a, w := range window {
			if w > 1 {
				axes = append(axes, a)
			}
		}
		if len(axes) == 0 {
			return x, true, nil
		}
		reduce := map[compute.ReduceOpType]func(compute.Value, ...int) (compute.Value, error){
			compute.ReduceOpSum: f.ReduceSum, compute.ReduceOpMax: f.ReduceMax, compute.ReduceOpMin: f.ReduceMin,
		}[op]
		v, err := reduce(x, axes...)
		if err != nil {
			return nil, true, err
		}
		v, err = f.Reshape(v, out...)
		return v, true, err
	}
	combine := map[compute.ReduceOpType]func(a, b compute.Value) (compute.Value, error){
		compute.ReduceOpSum: f.Add, compute.ReduceOpMax: f.Max, compute.ReduceOpMin: f.Min,
	}[op]
	var acc compute.Value
	starts, limits, steps := make([]int, rank), make([]int, rank), make([]int, rank)
	for p := range positions {
		// Window offset p, last axis fastest.
		for a, q := rank-1, p; a >= 0; a-- {
			stride := window[a]
			if strides != nil {
				stride = strides[a]
			}
			starts[a] = q % window[a]
			q /= window[a]
			limits[a] = starts[a] + (out[a]-1)*stride + 1
			steps[a] = stride
		}
		v, err := f.Slice(x, starts, limits, steps)
		if err != nil {
			return nil, true, err
		}
		if acc == nil {
			acc = v
		} else if acc, err = combine(acc, v); err != nil {
			return nil, true, err
		}
	}
	return acc, true, nil
}

func allOnes(v []int) bool {
	for _, x := range v {
		if x != 1 {
			return false
		}
	}
	return true
}

func slicesAllZero(p [][2]int) bool {
	for _, lohi := range p {
		if lohi[0] != 0 || lohi[1] != 0 {
			return false
		}
	}
	return true
}

// scalar is a constant of the given float dtype.
func scalar(f compute.Function, dtype dtypes.DType, v float64) (compute.Value, error) {
	if dtype == dtypes.Float32 {
		return f.Constant([]float32{float32(v)})
	}
	return f.Constant([]float64{v})
}
