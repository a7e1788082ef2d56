package fastconv

import (
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// convolve emits a convolution on f: lowered onto DotGeneral when covered, with f's own
// ConvGeneral otherwise.
func convolve(f compute.Function, input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (compute.Value, error) {
	if p, ok := newPhases(f, input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount); ok {
		return p.lower()
	}
	if c, ok := newConv(f, input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount); ok {
		return c.lower()
	}
	return f.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
}

// phases lowers a convolution with input dilation and stride 1 on the dilated axes: the
// gradient of a strided convolution with respect to its input (a transposed convolution).
//
// Convolving the zero-interleaved input wastes most multiplications on zeros. Instead, the
// output positions are split by phase (position modulo the dilation, per dilated axis):
// each phase only meets a subset of the kernel taps, all at undilated input positions, so
// it is an ordinary convolution of the undilated input with a strided slice of the kernel.
// The phase outputs are then interleaved. For a 3x3 kernel and dilation 2 this does 9 taps
// per 4 outputs instead of 36.
type phases struct {
	f             compute.Function
	input, kernel compute.Value
	outShape      shapes.Shape
	axes          compute.ConvolveAxesConfig
	channelGroups int
	batchGroups   int
	spatial       [][]phase // Phases of each spatial axis.
	outSizes      []int     // Number of outputs of each phase, per spatial axis.
}

// phase is the convolution, along one spatial axis, that computes the outputs of one phase.
type phase struct {
	// Kernel taps used: count of them, from first, step apart. count is 0 for phases that
	// meet no tap, whose outputs are zero.
	first, step, count     int
	stride, kernelDilation int
	padding                [2]int
}

// newPhases plans the phase decomposition of a convolution; it returns false unless the
// convolution is covered and has input dilation, with stride 1 on every dilated axis.
func newPhases(f compute.Function, input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (*phases, bool) {
	if !slices.ContainsFunc(inputDilations, func(d int) bool { return d > 1 }) {
		return nil, false
	}
	s, ok := check(f, input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
	if !ok {
		return nil, false
	}
	inShape, kernelShape, outShape := s.input, s.kernel, s.output
	n := len(axes.InputSpatial)
	strides, kernelDilations = orOnes(strides, n), orOnes(kernelDilations, n)
	p := &phases{
		f: f, input: input, kernel: kernel, outShape: outShape, axes: axes,
		channelGroups: channelGroupCount, batchGroups: batchGroupCount,
		spatial:  make([][]phase, n),
		outSizes: make([]int, n),
	}
	for i := range n {
		var pad [2]int
		if len(paddings) > 0 {
			pad = paddings[i]
		}
		inSize, kernelSize := inShape.Dim(axes.InputSpatial[i]), kernelShape.Dim(axes.KernelSpatial[i])
		outSize, dilation, kernelDilation := outShape.Dim(axes.OutputSpatial[i]), inputDilations[i], kernelDilations[i]
		if dilation == 1 {
			p.outSizes[i] = outSize
			p.spatial[i] = []phase{{step: 1, count: kernelSize, stride: strides[i], kernelDilation: kernelDilation, padding: pad}}
			continue
		}
		if strides[i] != 1 {
			return nil, false
		}
		p.outSizes[i] = (outSize + dilation - 1) / dilation
		g := gcd(kernelDilation, dilation)
		for offset := range dilation {
			// Output y = dilation·t + offset meets tap k at the dilated position y + k·kernelDilation,
			// that is, the input position t + (offset + k·kernelDilation - pad[0]) / dilation when divisible.
			ph := phase{first: -1, step: dilation / g, stride: 1, kernelDilation: kernelDilation / g}
			for k := range kernelSize {
				if ((offset+k*kernelDilation-pad[0])%dilation+dilation)%dilation == 0 {
					ph.first = k
					break
				}
			}
			if ph.first >= 0 {
				ph.count = (kernelSize-1-ph.first)/ph.step + 1
				start := floorDiv(offset+ph.first*kernelDilation-pad[0], dilation)
				ph.padding = [2]int{-start, p.outSizes[i] + (ph.count-1)*ph.kernelDilation - inSize + start}
			}
			p.spatial[i] = append(p.spatial[i], ph)
		}
	}
	return p, true
}

// gcd returns the greatest common divisor of two positive integers.
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// floorDiv returns a / b rounded down, for b > 0.
func floorDiv(a, b int) int {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// lower emits one convolution per combination of phases of the spatial axes, and
// interleaves their outputs.
func (p *phases) lower() (compute.Value, error) {
	n := len(p.spatial)
	subShape := p.outShape.Clone()
	for i, size := range p.outSizes {
		subShape.Dimensions[p.axes.OutputSpatial[i]] = size
	}
	var zeros compute.Value // Output of the phases that meet no kernel tap, created once.

	// Outputs of the combinations, in row-major order of the spatial axes' phases.
	var outputs []compute.Value
	combination := make([]int, n)
	for {
		sub := make([]phase, n)
		empty := false
		for i, c := range combination {
			sub[i] = p.spatial[i][c]
			empty = empty || sub[i].count == 0
		}
		var out compute.Value
		var err error
		if empty {
			if zeros == nil {
				if zeros, err = p.zeros(subShape); err != nil {
					return nil, err
				}
			}
			out = zeros
		} else if out, err = p.convolve(sub); err != nil {
			return nil, err
		}
		outputs = append(outputs, out)

		k := n - 1
		for ; k >= 0; k-- {
			if combination[k]++; combination[k] < len(p.spatial[k]) {
				break
			}
			combination[k] = 0
		}
		if k < 0 {
			break
		}
	}

	// Interleave, from the last spatial axis to the first.
	dims := subShape.Dimensions
	for i := n - 1; i >= 0; i-- {
		numPhases := len(p.spatial[i])
		var merged []compute.Value
		for j := 0; j < len(outputs); j += numPhases {
			out, err := p.interleave(outputs[j:j+numPhases], dims, p.axes.OutputSpatial[i])
			if err != nil {
				return nil, err
			}
			merged = append(merged, out)
		}
		outputs = merged
		dims[p.axes.OutputSpatial[i]] *= numPhases
	}

	// Crop the outputs of the last phases that are beyond the output.
	config := make([]compute.PadAxis, len(dims))
	cropped := false
	for _, axis := range p.axes.OutputSpatial {
		config[axis].End = p.outShape.Dimensions[axis] - dims[axis]
		cropped = cropped || config[axis].End != 0
	}
	if !cropped {
		return outputs[0], nil
	}
	zero, err := scalarZero(p.f, p.outShape.DType)
	if err != nil {
		return nil, err
	}
	return p.f.Pad(outputs[0], zero, config...)
}

// convolve emits the convolution of the undilated input for one combination of phases.
func (p *phases) convolve(sub []phase) (compute.Value, error) {
	n := len(sub)
	strides, kernelDilations, paddings := make([]int, n), make([]int, n), make([][2]int, n)
	kernelShape, err := p.f.Shape(p.kernel)
	if err != nil {
		return nil, err
	}
	rank := kernelShape.Rank()
	starts, limits, steps := make([]int, rank), slices.Clone(kernelShape.Dimensions), make([]int, rank)
	for j := range steps {
		steps[j] = 1
	}
	whole := true
	for i, ph := range sub {
		strides[i], kernelDilations[i], paddings[i] = ph.stride, ph.kernelDilation, ph.padding
		axis := p.axes.KernelSpatial[i]
		starts[axis], steps[axis], limits[axis] = ph.first, ph.step, ph.first+(ph.count-1)*ph.step+1
		whole = whole && ph.count == kernelShape.Dimensions[axis]
	}
	kernel := p.kernel
	if !whole {
		if kernel, err = p.f.Slice(p.kernel, starts, limits, steps); err != nil {
			return nil, err
		}
	}
	return convolve(p.f, p.input, kernel, p.axes, strides, paddings, nil, kernelDilations, p.channelGroups, p.batchGroups)
}

// zeros returns a tensor of zeros of the given shape.
func (p *phases) zeros(shape shapes.Shape) (compute.Value, error) {
	zero, err := scalarZero(p.f, shape.DType)
	if err != nil {
		return nil, err
	}
	return p.f.BroadcastInDim(zero, shape, nil)
}

// interleave returns the tensor whose elements along axis alternate between those of
// parts, all shaped dims.
func (p *phases) interleave(parts []compute.Value, dims []int, axis int) (compute.Value, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	expanded := slices.Insert(slices.Clone(dims), axis+1, 1)
	reshaped := make([]compute.Value, len(parts))
	for i, part := range parts {
		var err error
		if reshaped[i], err = p.f.Reshape(part, expanded...); err != nil {
			return nil, err
		}
	}
	out, err := p.f.Concatenate(axis+1, reshaped...)
	if err != nil {
		return nil, err
	}
	merged := slices.Clone(dims)
	merged[axis] *= len(parts)
	return p.f.Reshape(out, merged...)
}
