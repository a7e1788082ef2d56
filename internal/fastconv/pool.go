package fastconv

import (
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// maxWindowPositions bounds the shifted slices a window reduction is lowered
// to; larger windows that are not global go to the wrapped backend.
const maxWindowPositions = 64

// ReduceWindow lowers pooling onto plain ops, which the pure-Go backend runs
// much faster than its generic window loop (in a ResNet-18 Grad-CAM that loop
// took 60% of the time: the stem's max-pool and the global average pool's
// gradient): a global window becomes one reduction over its axes, a window
// that meets one element a broadcast, and a small one the combination of its
// shifted, strided copies of the input, taken by Gather in contiguous runs
// (see gatherWindows) or, when runs would be short, by Slice. Dilated windows
// and other dtypes go to the wrapped backend.
func (f *function) ReduceWindow(x compute.Value, op compute.ReduceOpType,
	window, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, error) {
	if op == compute.ReduceOpSum && allOnes(inputDilations) {
		x, paddings = f.foldZeroPadding(x, paddings)
	}
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
	steps := make([]int, rank) // Strides; the window size where none are given.
	for a := range steps {
		steps[a] = window[a]
		if strides != nil {
			steps[a] = strides[a]
		}
	}
	padded, out := make([]int, rank), make([]int, rank)
	positions, global := 1, true
	pads := make([]compute.PadAxis, rank)
	for a, d := range s.Dimensions {
		stride := steps[a]
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
	if v, ok, err := broadcastWindow(f, x, s.Dimensions, window, strides, paddings, out); ok || err != nil {
		return v, true, err
	}
	if !global && positions > maxWindowPositions {
		return nil, false, nil
	}
	gather := !global && gatherRun(window, steps, out, padded) >= minGatherRun
	if gather {
		// Splitting a strided axis needs its size to be a multiple of the stride; the
		// extra padding lies beyond the last window.
		for a := range pads {
			if splitAxis(window[a], steps[a], out[a]) {
				extra := (steps[a] - padded[a]%steps[a]) % steps[a]
				pads[a].End += extra
				padded[a] += extra
			}
		}
	}
	if slices.ContainsFunc(pads, func(p compute.PadAxis) bool { return p != compute.PadAxis{} }) {
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
	var windows []compute.Value
	if gather {
		windows, err = gatherWindows(f, x, padded, window, steps, out)
	} else {
		windows, err = sliceWindows(f, x, window, steps, out)
	}
	if err != nil {
		return nil, true, err
	}
	combine := map[compute.ReduceOpType]func(a, b compute.Value) (compute.Value, error){
		compute.ReduceOpSum: f.Add, compute.ReduceOpMax: f.Max, compute.ReduceOpMin: f.Min,
	}[op]
	acc := windows[0]
	for _, v := range windows[1:] {
		if acc, err = combine(acc, v); err != nil {
			return nil, true, err
		}
	}
	return acc, true, nil
}

// splitAxis reports whether a window axis is strided, so that its windows are taken
// from the axis split in (position / step, position % step).
func splitAxis(window, step, out int) bool {
	return step > 1 && out > 1
}

// windowed reports whether an axis is reduced or subsampled.
func windowed(window, step int) bool {
	return window > 1 || step > 1
}

// gatherRun is the number of contiguous elements gatherWindows copies at once.
func gatherRun(window, steps, out, padded []int) int {
	run, last := 1, len(window)-1
	for a := last; a >= 0; a-- {
		if windowed(window[a], steps[a]) {
			if a != last && splitAxis(window[a], steps[a], out[a]) {
				return run // The axis' phase comes next in memory.
			}
			return run * out[a]
		}
		run *= padded[a]
	}
	return run
}

// sliceWindows returns x at each window offset, strided by steps, as Slice ops, which
// copy element by element.
func sliceWindows(f compute.Function, x compute.Value, window, steps, out []int) ([]compute.Value, error) {
	rank := len(window)
	var windows []compute.Value
	starts, limits := make([]int, rank), make([]int, rank)
	for p := range product(window) {
		// Window offset p, last axis fastest.
		for a, q := rank-1, p; a >= 0; a-- {
			starts[a] = q % window[a]
			q /= window[a]
			limits[a] = starts[a] + (out[a]-1)*steps[a] + 1
		}
		v, err := f.Slice(x, starts, limits, steps)
		if err != nil {
			return nil, err
		}
		windows = append(windows, v)
	}
	return windows, nil
}

// gatherWindows returns x (of dimensions padded) at each window offset, strided by steps,
// with one Gather each, which copies contiguous runs. Strided axes are split in (position
// / step, position % step), and if the innermost one is, its phase axis is moved to the
// front (see frontPhase).
func gatherWindows(f compute.Function, x compute.Value, padded, window, steps, out []int) ([]compute.Value, error) {
	rank := len(window)
	var dims []int
	major, phase := make([]int, rank), make([]int, rank) // Positions in dims; phase -1 if not split.
	for a, d := range padded {
		major[a], phase[a] = len(dims), -1
		if splitAxis(window[a], steps[a], out[a]) {
			phase[a] = len(dims) + 1
			dims = append(dims, d/steps[a], steps[a])
		} else {
			dims = append(dims, d)
		}
	}
	x, err := f.Reshape(x, dims...)
	if err != nil {
		return nil, err
	}
	sliceSizes := make([]int, len(dims))
	var startIndexMap, collapsed []int
	for a := range window {
		sliceSizes[major[a]] = padded[a]
		if windowed(window[a], steps[a]) {
			sliceSizes[major[a]] = out[a]
			startIndexMap = append(startIndexMap, major[a])
		}
		if phase[a] >= 0 {
			sliceSizes[phase[a]] = 1
			startIndexMap = append(startIndexMap, phase[a])
			collapsed = append(collapsed, phase[a])
		}
	}
	if phase[rank-1] >= 0 {
		var newPos []int
		if x, newPos, err = frontPhase(f, x, dims); err != nil {
			return nil, err
		}
		renumber(newPos, startIndexMap, collapsed, sliceSizes)
	}
	offsetAxes := make([]int, rank)
	for i := range offsetAxes {
		offsetAxes[i] = i
	}
	var windows []compute.Value
	offset := make([]int, rank)
	for p := range product(window) {
		// Window offset p, last axis fastest.
		for a, q := rank-1, p; a >= 0; a-- {
			offset[a] = q % window[a]
			q /= window[a]
		}
		var indices []int32
		for a := range window {
			switch {
			case phase[a] >= 0:
				indices = append(indices, int32(offset[a]/steps[a]), int32(offset[a]%steps[a]))
			case windowed(window[a], steps[a]):
				indices = append(indices, int32(offset[a]))
			}
		}
		start, err := f.Constant(indices, len(indices))
		if err != nil {
			return nil, err
		}
		v, err := f.Gather(x, start, 0, offsetAxes, collapsed, startIndexMap, sliceSizes, true)
		if err != nil {
			return nil, err
		}
		windows = append(windows, v)
	}
	return windows, nil
}

// broadcastWindow covers the window reductions in which every window meets exactly one
// element of x: along each axis with a window, x has one element and every window
// covers it, so each output is that element (the padding holds the reduction's identity).
func broadcastWindow(f compute.Function, x compute.Value, dims, window, strides []int, paddings [][2]int,
	out []int) (compute.Value, bool, error) {
	var kept, axes []int // Dimensions and output axes of x without the windowed axes.
	for a, d := range dims {
		if window[a] == 1 && (strides == nil || strides[a] == 1) && (paddings == nil || paddings[a] == [2]int{}) {
			kept, axes = append(kept, d), append(axes, a)
			continue
		}
		lo, stride := 0, window[a]
		if paddings != nil {
			lo = paddings[a][0]
		}
		if strides != nil {
			stride = strides[a]
		}
		// Window o covers padded positions [o·stride, o·stride+window); the element is at lo.
		if d != 1 || lo > window[a]-1 || (out[a]-1)*stride > lo {
			return nil, false, nil
		}
	}
	s, err := f.Shape(x)
	if err != nil {
		return nil, true, err
	}
	if x, err = f.Reshape(x, kept...); err != nil {
		return nil, true, err
	}
	v, err := f.BroadcastInDim(x, shapes.Make(s.DType, out...), axes)
	return v, true, err
}

func allOnes(v []int) bool {
	for _, x := range v {
		if x != 1 {
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
