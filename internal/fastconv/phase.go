package fastconv

import (
	"slices"

	"github.com/gomlx/compute"
)

// Strided windows are gathered from an input whose strided axes are split in two,
// (position / stride, position % stride): a window then takes one position of each
// phase axis (position % stride) and is contiguous along the other. When the innermost
// axis is split, its phase axis is innermost and every window would be copied one
// element at a time; frontPhase moves it to the front instead, with the one transpose
// the backend runs tiled and on all cores (rank 2, [1, 0]), and leaves the other axes in
// order, so that windows are contiguous along the innermost axis again.

// phaseCost is the planning cost of frontPhase on a tensor of the given size: a tiled
// transpose, cheaper than the backend's element-by-element one.
func phaseCost(size int) float64 {
	return 0.5 * float64(size)
}

// frontPhase moves the last axis of x, of dimensions dims, to the front. It returns the
// moved tensor and the new position of each axis of x.
func frontPhase(f compute.Function, x compute.Value, dims []int) (compute.Value, []int, error) {
	last := len(dims) - 1
	x, err := f.Reshape(x, product(dims[:last]), dims[last])
	if err != nil {
		return nil, nil, err
	}
	if x, err = f.Transpose(x, 1, 0); err != nil {
		return nil, nil, err
	}
	if x, err = f.Reshape(x, append([]int{dims[last]}, dims[:last]...)...); err != nil {
		return nil, nil, err
	}
	newPos := make([]int, len(dims))
	for i := range last {
		newPos[i] = i + 1
	}
	return x, newPos, nil
}

// renumber rewrites the Gather parameters that refer to the operand's axes after the
// axes moved to newPos: axes in startIndexMap and collapsed (kept sorted), and the
// per-axis sliceSizes. All are changed in place.
func renumber(newPos, startIndexMap, collapsed, sliceSizes []int) {
	sizes := slices.Clone(sliceSizes)
	for old, pos := range newPos {
		sliceSizes[pos] = sizes[old]
	}
	for i, old := range startIndexMap {
		startIndexMap[i] = newPos[old]
	}
	for i, old := range collapsed {
		collapsed[i] = newPos[old]
	}
	slices.Sort(collapsed)
}

func product(v []int) int {
	p := 1
	for _, x := range v {
		p *= x
	}
	return p
}
