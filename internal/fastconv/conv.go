package fastconv

import (
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"
)

// Limits beyond which convolutions are left to the wrapped backend.
const (
	// maxPatches bounds the number of elements of the patches (the im2col matrix), about
	// the output size times the kernel size divided by the output channels.
	maxPatches = 1 << 26
	// maxSlices bounds the number of Slice ops of a lowering that cannot use Gather.
	maxSlices = 256
)

// minGatherRun is the shortest contiguous run for which windows are gathered rather than
// sliced.
const minGatherRun = 8

// Relative costs used to choose a plan, in units of "one element moved by a Transpose".
const (
	// copyCost is the cost per element of copying contiguous runs (Reshape, Concatenate, Gather).
	copyCost = 0.25
	// chunkCost is the cost of each contiguous run that Concatenate or Gather copy.
	chunkCost = 8
)

// axisKind is the role of a logical axis of a lowered convolution.
type axisKind uint8

const (
	groupAxis         axisKind = iota // G: channel groups, or batch groups.
	batchAxis                         // B: batch, per group.
	inChannelAxis                     // C: input channels, per group.
	outChannelAxis                    // O: output channels, per group.
	inSpatialAxis                     // S: input spatial axis, after padding and input dilation.
	outSpatialAxis                    // Y: output spatial axis.
	kernelSpatialAxis                 // K: kernel spatial axis.
)

// axis is a logical axis of a lowered convolution. Spatial axes carry the index of their
// spatial dimension.
//
// The convolution computes, for each group g:
//
//	out[g, b, y..., o] = Σ_{c, k...} in[g, b, c, y·stride + k·kernelDilation ...] · kernel[g, c, k..., o]
//
// where in is the padded and input-dilated input.
type axis struct {
	kind    axisKind
	spatial int
}

// conv is one ConvGeneral call being lowered onto DotGeneral.
//
// The input is padded and input-dilated with one Pad. Its "patches" (the im2col matrix)
// are the windows the kernel meets: either one window per kernel position, each with the
// output's spatial size, or, when the output is spatially smaller than the kernel (kernel
// gradients), one window per output position, each with the kernel's spatial size. A
// single Gather takes all windows (strided windows become contiguous by splitting the axis
// in two); windows too fragmented for Gather are taken by Slice ops and concatenated. One
// DotGeneral then contracts the patches with the kernel. A plan fixes the order of the
// axes of every intermediate so that DotGeneral needs no transposition of its own, the
// windows are copied in long runs and as few tensors as possible are transposed.
type conv struct {
	f                              compute.Function
	input, kernel                  compute.Value
	inShape, kernelShape, outShape shapes.Shape
	axes                           compute.ConvolveAxesConfig
	strides, kernelDilations       []int
	pads                           []compute.PadAxis // Padding and input dilation of each spatial axis.
	groups                         int
	// loopKernel: the windows are enumerated by kernel position and have the output's
	// spatial shape (im2col); otherwise they are enumerated by output position and have the
	// kernel's spatial shape (kernel gradients, whose outputs are small).
	loopKernel  bool
	batchGroups bool // Groups split the batch (batch_group_count), not the channels.
	size        map[axis]int
	plan        plan
}

// convShapes are the shapes of a convolution's operands and output.
type convShapes struct {
	input, kernel, output shapes.Shape
}

// check validates a ConvGeneral call and returns its shapes. It returns false if the
// convolution is not covered: not float32 or float64, invalid (the wrapped ConvGeneral then
// reports the error), dynamically shaped or empty.
func check(f compute.Function, input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (convShapes, bool) {
	var s convShapes
	var err error
	if s.input, err = f.Shape(input); err != nil {
		return s, false
	}
	if s.kernel, err = f.Shape(kernel); err != nil {
		return s, false
	}
	if dt := s.input.DType; (dt != dtypes.Float32 && dt != dtypes.Float64) || s.kernel.DType != dt {
		return s, false
	}
	s.output, err = shapeinference.ConvGeneral(s.input, s.kernel, axes, strides, paddings,
		inputDilations, kernelDilations, max(channelGroupCount, 1), max(batchGroupCount, 1))
	if err != nil {
		return s, false
	}
	for _, shape := range []shapes.Shape{s.input, s.kernel, s.output} {
		if shape.IsDynamic() || shape.Size() == 0 {
			return s, false
		}
	}
	return s, true
}

// newConv plans the lowering of a ConvGeneral call. It returns false if the convolution is
// not covered, and the caller should use the wrapped ConvGeneral.
func newConv(f compute.Function, input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (*conv, bool) {
	s, ok := check(f, input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
	if !ok {
		return nil, false
	}
	inShape, kernelShape, outShape := s.input, s.kernel, s.output
	channelGroupCount, batchGroupCount = max(channelGroupCount, 1), max(batchGroupCount, 1)

	n := len(axes.InputSpatial)
	c := &conv{
		f: f, input: input, kernel: kernel,
		inShape: inShape, kernelShape: kernelShape, outShape: outShape,
		axes:            axes,
		strides:         orOnes(strides, n),
		kernelDilations: orOnes(kernelDilations, n),
		pads:            make([]compute.PadAxis, n),
		groups:          max(channelGroupCount, batchGroupCount),
		batchGroups:     batchGroupCount > 1,
		size:            make(map[axis]int),
	}
	inputDilations = orOnes(inputDilations, n)
	c.size[axis{kind: groupAxis}] = c.groups
	c.size[axis{kind: batchAxis}] = outShape.Dim(axes.OutputBatch)
	c.size[axis{kind: inChannelAxis}] = kernelShape.Dim(axes.KernelInputChannels)
	c.size[axis{kind: outChannelAxis}] = kernelShape.Dim(axes.KernelOutputChannels) / c.groups
	for i := range n {
		if len(paddings) > 0 {
			c.pads[i].Start, c.pads[i].End = paddings[i][0], paddings[i][1]
		}
		c.pads[i].Interior = inputDilations[i] - 1
		dilated := (inShape.Dim(axes.InputSpatial[i])-1)*inputDilations[i] + 1
		c.size[axis{inSpatialAxis, i}] = dilated + c.pads[i].Start + c.pads[i].End
		c.size[axis{outSpatialAxis, i}] = outShape.Dim(axes.OutputSpatial[i])
		c.size[axis{kernelSpatialAxis, i}] = kernelShape.Dim(axes.KernelSpatial[i])
	}

	patches := append(c.grouped(axis{kind: batchAxis}, axis{kind: inChannelAxis}), c.spatialAxes(outSpatialAxis)...)
	if c.prod(append(patches, c.spatialAxes(kernelSpatialAxis)...)) > maxPatches {
		return nil, false
	}
	c.loopKernel = c.prod(c.spatialAxes(kernelSpatialAxis)) <= c.prod(c.spatialAxes(outSpatialAxis))
	if c.plan, ok = c.bestPlan(); !ok {
		return nil, false
	}
	if c.plan.gather {
		// Splitting a strided axis needs its size to be a multiple of the step.
		for i := range n {
			if _, step, _ := c.window(i); c.split(i) {
				s := axis{inSpatialAxis, i}
				extra := (step - c.size[s]%step) % step
				c.pads[i].End += extra
				c.size[s] += extra
			}
		}
	}
	return c, true
}

// orOnes returns values, or n ones if values is empty.
func orOnes(values []int, n int) []int {
	if len(values) > 0 {
		return values
	}
	ones := make([]int, n)
	for i := range ones {
		ones[i] = 1
	}
	return ones
}

// spatialAxes returns the n spatial axes of the given kind, in spatial order.
func (c *conv) spatialAxes(kind axisKind) []axis {
	out := make([]axis, len(c.axes.InputSpatial))
	for i := range out {
		out[i] = axis{kind, i}
	}
	return out
}

// grouped prepends the group axis to the given axes if the convolution is grouped.
func (c *conv) grouped(axes ...axis) []axis {
	if c.groups == 1 {
		return axes
	}
	return append([]axis{{kind: groupAxis}}, axes...)
}

// inputLayout returns the logical axes of the input, in memory order.
func (c *conv) inputLayout() []axis {
	var out []axis
	for p := range c.inShape.Rank() {
		switch {
		case p == c.axes.InputBatch && c.batchGroups:
			out = append(out, c.grouped(axis{kind: batchAxis})...)
		case p == c.axes.InputBatch:
			out = append(out, axis{kind: batchAxis})
		case p == c.axes.InputChannels && !c.batchGroups:
			out = append(out, c.grouped(axis{kind: inChannelAxis})...)
		case p == c.axes.InputChannels:
			out = append(out, axis{kind: inChannelAxis})
		default:
			out = append(out, axis{inSpatialAxis, slices.Index(c.axes.InputSpatial, p)})
		}
	}
	return out
}

// kernelLayout returns the logical axes of the kernel, in memory order.
func (c *conv) kernelLayout() []axis {
	var out []axis
	for p := range c.kernelShape.Rank() {
		switch p {
		case c.axes.KernelOutputChannels:
			out = append(out, c.grouped(axis{kind: outChannelAxis})...)
		case c.axes.KernelInputChannels:
			out = append(out, axis{kind: inChannelAxis})
		default:
			out = append(out, axis{kernelSpatialAxis, slices.Index(c.axes.KernelSpatial, p)})
		}
	}
	return out
}

// outputLayout returns the logical axes of the output, in memory order.
func (c *conv) outputLayout() []axis {
	var out []axis
	for p := range c.outShape.Rank() {
		switch p {
		case c.axes.OutputBatch:
			out = append(out, axis{kind: batchAxis})
		case c.axes.OutputChannels:
			out = append(out, c.grouped(axis{kind: outChannelAxis})...)
		default:
			out = append(out, axis{outSpatialAxis, slices.Index(c.axes.OutputSpatial, p)})
		}
	}
	return out
}

// dims returns the sizes of the given logical axes.
func (c *conv) dims(axes []axis) []int {
	out := make([]int, len(axes))
	for i, a := range axes {
		out[i] = c.size[a]
	}
	return out
}

// prod returns the number of elements of a tensor with the given logical axes.
func (c *conv) prod(axes []axis) int {
	n := 1
	for _, a := range axes {
		n *= c.size[a]
	}
	return n
}

// sameOrder reports whether two orderings of the same logical axes lay out the data
// identically, that is, whether they only differ by the position of axes of size 1.
func (c *conv) sameOrder(a, b []axis) bool {
	return slices.Equal(c.nonUnit(a), c.nonUnit(b))
}

// nonUnit returns axes without those of size 1.
func (c *conv) nonUnit(axes []axis) []axis {
	return slices.DeleteFunc(slices.Clone(axes), func(x axis) bool { return c.size[x] == 1 })
}

// transposition returns the Transpose that lays out a tensor whose memory layout is from as
// to, on as few axes as possible: axes of size 1 are dropped and axes that stay adjacent and
// in order are merged. dims are the merged dimensions of the input, perm their permutation.
// The backend has fast paths for few axes, notably for any permutation that keeps the last
// axis in place, which it copies in runs.
func (c *conv) transposition(from, to []axis) (dims, perm []int) {
	f, t := c.nonUnit(from), c.nonUnit(to)
	var starts []int // Index in f of the first axis of each merged axis.
	for i, a := range f {
		if i == 0 || slices.Index(t, a) != slices.Index(t, f[i-1])+1 {
			starts = append(starts, i)
			dims = append(dims, 1)
		}
		dims[len(dims)-1] *= c.size[a]
	}
	for _, a := range t {
		if g := slices.Index(starts, slices.Index(f, a)); g >= 0 {
			perm = append(perm, g)
		}
	}
	return dims, perm
}

// transposeCost is the cost of a Transpose of the given merged dimensions and permutation:
// copies of runs if it keeps the last axis in place, element by element otherwise.
func transposeCost(dims, perm []int) float64 {
	size := 1
	for _, d := range dims {
		size *= d
	}
	if last := len(dims) - 1; perm[last] == last {
		return copyCost*float64(size) + chunkCost*float64(size)/float64(dims[last])
	}
	return float64(size)
}

// arrangeCost is the cost of turning a tensor whose memory layout is from into one laid out
// as to. physicalDims are the tensor's dimensions, or nil if it is a fresh intermediate that
// a Reshape takes over without copying.
func (c *conv) arrangeCost(from []axis, physicalDims []int, to []axis) float64 {
	switch {
	case !c.sameOrder(from, to):
		return transposeCost(c.transposition(from, to))
	case physicalDims == nil || slices.Equal(physicalDims, c.dims(to)):
		return 0
	default:
		return copyCost * float64(c.prod(from))
	}
}

// arrange returns x, whose memory layout is from, laid out as to: a no-op, a Reshape, or a
// Transpose of the fewest axes between Reshapes.
func (c *conv) arrange(x compute.Value, from, to []axis) (compute.Value, error) {
	shape, err := c.f.Shape(x)
	if err != nil {
		return nil, err
	}
	toDims := c.dims(to)
	if !c.sameOrder(from, to) {
		dims, perm := c.transposition(from, to)
		if x, err = c.reshape(x, dims); err != nil {
			return nil, err
		}
		if x, err = c.f.Transpose(x, perm...); err != nil {
			return nil, err
		}
	} else if slices.Equal(shape.Dimensions, toDims) {
		return x, nil
	}
	return c.reshape(x, toDims)
}

// plan fixes the order of the axes of every tensor of a lowering.
type plan struct {
	// patches are the logical axes of the windows stacked: G (if grouped), then the cross
	// axes (B and Y) and the contracting axes (C and K), in either order.
	patches []axis
	// windowLayout are the axes of each window, and of the padded input they are taken
	// from: patches without the enumerated axes, and with the remaining spatial axes
	// replaced by S.
	windowLayout []axis
	// loopAt is the position in patches of the first enumerated axis; they are contiguous.
	loopAt int
	// gather: the windows are taken by one Gather rather than by Slice ops.
	gather bool
	// phased: the innermost axis of the windows is split (strided), and its phase axis is
	// moved to the front before the Gather (see frontPhase).
	phased bool
	// contractFirst: patches hold the contracting axes before the cross axes.
	contractFirst bool
	// cross and contract are the cross (B, Y) and contracting (C, K) axes, in patches order.
	cross, contract []axis
	// kernel is the layout of the kernel operand of DotGeneral: G, then O and the
	// contracting axes in either order.
	kernel []axis
	// kernelLHS: the kernel is DotGeneral's left operand, and its result is [G, O, cross];
	// otherwise the patches are, and the result is [G, cross, O].
	kernelLHS bool
	cost      float64
}

// result returns the logical axes of DotGeneral's result.
func (p *plan) result(c *conv) []axis {
	o := axis{kind: outChannelAxis}
	if p.kernelLHS {
		return c.grouped(append([]axis{o}, p.cross...)...)
	}
	return c.grouped(append(slices.Clone(p.cross), o)...)
}

// bestPlan returns the cheapest valid plan, and false if there is none.
func (c *conv) bestPlan() (plan, bool) {
	ks, ys := c.spatialAxes(kernelSpatialAxis), c.spatialAxes(outSpatialAxis)
	b, ch, o := axis{kind: batchAxis}, axis{kind: inChannelAxis}, axis{kind: outChannelAxis}

	// Candidate orders of the contracting and the cross axes: channels first or last,
	// and the orders in which the kernel and the output already are.
	contracts := [][]axis{append([]axis{ch}, ks...), append(slices.Clone(ks), ch)}
	crosses := [][]axis{append([]axis{b}, ys...), append(slices.Clone(ys), b)}
	kernelLayout := c.kernelLayout()
	contracts = appendNew(contracts, slices.DeleteFunc(slices.Clone(kernelLayout), func(a axis) bool {
		return a.kind == groupAxis || a.kind == outChannelAxis
	}))
	crosses = appendNew(crosses, slices.DeleteFunc(c.outputLayout(), func(a axis) bool {
		return a.kind == groupAxis || a.kind == outChannelAxis
	}))

	var best plan
	found := false
	for _, contract := range contracts {
		for _, cross := range crosses {
			for _, kernelLHS := range []bool{false, true} {
				for _, contractFirst := range []bool{false, true} {
					if contractFirst && !kernelLHS {
						continue // DotGeneral's left operand must hold its contracting axes last.
					}
					kernels := [][]axis{c.grouped(append([]axis{o}, contract...)...)}
					if !kernelLHS {
						kernels = append(kernels, c.grouped(append(slices.Clone(contract), o)...))
					}
					for _, kernel := range kernels {
						p := plan{contractFirst: contractFirst, cross: cross,
							contract: contract, kernel: kernel, kernelLHS: kernelLHS}
						if c.complete(&p) && (!found || p.cost < best.cost) {
							best, found = p, true
						}
					}
				}
			}
		}
	}
	return best, found
}

// appendNew appends order to orders if it is not there yet.
func appendNew(orders [][]axis, order []axis) [][]axis {
	for _, o := range orders {
		if slices.Equal(o, order) {
			return orders
		}
	}
	return append(orders, order)
}

// complete derives the layouts of the patches and of the windows of p and its cost. It
// returns false if the enumerated axes are not contiguous in the patches, or if the
// windows would need too many Slice ops.
func (c *conv) complete(p *plan) bool {
	if p.contractFirst {
		p.patches = c.grouped(append(slices.Clone(p.contract), p.cross...)...)
	} else {
		p.patches = c.grouped(append(slices.Clone(p.cross), p.contract...)...)
	}
	loopKind, innerKind := outSpatialAxis, kernelSpatialAxis
	if c.loopKernel {
		loopKind, innerKind = kernelSpatialAxis, outSpatialAxis
	}
	p.loopAt = slices.IndexFunc(p.patches, func(a axis) bool { return a.kind == loopKind })
	n := len(c.axes.InputSpatial)
	for _, a := range p.patches[p.loopAt : p.loopAt+n] {
		if a.kind != loopKind {
			return false
		}
	}
	p.windowLayout = nil
	for _, a := range p.patches {
		switch a.kind {
		case loopKind:
		case innerKind:
			p.windowLayout = append(p.windowLayout, axis{inSpatialAxis, a.spatial})
		default:
			p.windowLayout = append(p.windowLayout, a)
		}
	}

	// Data movement: arranging the padded input, the kernel and the result, and taking
	// the windows.
	inputLayout := c.inputLayout()
	paddedDims := c.inShape.Dimensions
	if c.padded() {
		paddedDims = nil // Pad already produces a fresh tensor: reshaping it is free.
	}
	p.cost = c.arrangeCost(inputLayout, paddedDims, p.windowLayout) +
		c.arrangeCost(c.kernelLayout(), c.kernelShape.Dimensions, p.kernel)
	if !c.sameOrder(p.result(c), c.outputLayout()) {
		p.cost += transposeCost(c.transposition(p.result(c), c.outputLayout()))
	}
	patchSize := float64(c.prod(p.patches))
	numWindows := c.prod(p.patches[p.loopAt : p.loopAt+n])
	if numWindows == 1 && c.wholeWindow() {
		return true // The only window is the padded input itself.
	}
	// The cheapest way to take the windows: one Gather, one Gather after moving the
	// innermost phase axis to the front, or Slice ops.
	gatherCost := func(run int) float64 {
		return copyCost*patchSize + chunkCost*patchSize/float64(run)
	}
	best := math.Inf(1)
	if run := c.gatherRun(p, false); run >= minGatherRun {
		best, p.gather = gatherCost(run), true
	}
	if c.innermostSplit(p) {
		if run := c.gatherRun(p, true); run >= minGatherRun {
			if cost := phaseCost(c.prod(p.windowLayout)) + gatherCost(run); cost < best {
				best, p.gather, p.phased = cost, true, true
			}
		}
	}
	if numWindows <= maxSlices {
		cost := patchSize   // Slice copies element by element,
		if numWindows > 1 { // and Concatenate by runs.
			concatRun := c.prod(p.patches[p.loopAt+n:])
			cost += copyCost*patchSize + chunkCost*patchSize/float64(concatRun)
		}
		if cost < best {
			best, p.gather, p.phased = cost, false, false
		}
	}
	if math.IsInf(best, 1) {
		return false
	}
	p.cost += best
	return true
}

// innermostSplit reports whether the innermost axis of the windows is strided.
func (c *conv) innermostSplit(p *plan) bool {
	a := p.windowLayout[len(p.windowLayout)-1]
	return a.kind == inSpatialAxis && c.split(a.spatial)
}

// wholeWindow reports whether the windows cover the whole padded input (1x1 kernels with
// stride 1 and no padding).
func (c *conv) wholeWindow() bool {
	for i := range c.axes.InputSpatial {
		_, step, count := c.window(i)
		if count != c.size[axis{inSpatialAxis, i}] || (step > 1 && count > 1) {
			return false
		}
	}
	return true
}

// padded reports whether the input needs padding or input dilation.
func (c *conv) padded() bool {
	return slices.ContainsFunc(c.pads, func(p compute.PadAxis) bool { return p != compute.PadAxis{} })
}

// lower emits the planned ops and returns the convolution's output.
func (c *conv) lower() (compute.Value, error) {
	p := &c.plan
	x := c.input
	var err error
	if c.padded() {
		if x, err = c.pad(x); err != nil {
			return nil, err
		}
	}
	if x, err = c.arrange(x, c.inputLayout(), p.windowLayout); err != nil {
		return nil, err
	}
	patches, err := c.patches(x)
	if err != nil {
		return nil, err
	}

	// DotGeneral operands: patches as [G, cross, contract...] or [G, contract..., cross],
	// with the contracting axes shaped as in the kernel operand.
	crossSize := c.prod(p.cross)
	contractDims := c.dims(p.contract)
	var patchDims []int
	if p.contractFirst {
		patchDims = c.groupedDims(append(slices.Clone(contractDims), crossSize))
	} else {
		patchDims = c.groupedDims(append([]int{crossSize}, contractDims...))
	}
	if patches, err = c.reshape(patches, patchDims); err != nil {
		return nil, err
	}
	kernel, err := c.arrange(c.kernel, c.kernelLayout(), p.kernel)
	if err != nil {
		return nil, err
	}
	var batch []int
	if c.groups > 1 {
		batch = []int{0}
	}
	first := len(batch) // Index of the first axis after the group axis.
	patchContract := make([]int, len(p.contract))
	kernelContract := make([]int, len(p.contract))
	for i, a := range p.contract {
		patchContract[i] = first + i
		if !p.contractFirst {
			patchContract[i]++
		}
		kernelContract[i] = slices.Index(p.kernel, a)
	}
	var result compute.Value
	if p.kernelLHS {
		result, err = c.f.DotGeneral(kernel, kernelContract, batch, patches, patchContract, batch, compute.DotGeneralConfig{})
	} else {
		result, err = c.f.DotGeneral(patches, patchContract, batch, kernel, kernelContract, batch, compute.DotGeneralConfig{})
	}
	if err != nil {
		return nil, err
	}

	if outputLayout := c.outputLayout(); !c.sameOrder(p.result(c), outputLayout) {
		if result, err = c.arrange(result, p.result(c), outputLayout); err != nil {
			return nil, err
		}
	}
	return c.reshape(result, c.outShape.Dimensions)
}

// groupedDims prepends the number of groups to dims if the convolution is grouped.
func (c *conv) groupedDims(dims []int) []int {
	if c.groups == 1 {
		return dims
	}
	return append([]int{c.groups}, dims...)
}

// pad applies the padding and the input dilation (as interior padding) to the input.
func (c *conv) pad(x compute.Value) (compute.Value, error) {
	fill, err := scalarZero(c.f, c.inShape.DType)
	if err != nil {
		return nil, err
	}
	config := make([]compute.PadAxis, c.inShape.Rank())
	for i, p := range c.axes.InputSpatial {
		config[p] = c.pads[i]
	}
	return c.f.Pad(x, fill, config...)
}

// window describes how the windows cover spatial axis i of the padded input: each window
// takes count elements, step apart, from position pos·spacing (pos is the enumerated
// kernel or output position).
func (c *conv) window(i int) (spacing, step, count int) {
	if c.loopKernel {
		return c.kernelDilations[i], c.strides[i], c.size[axis{outSpatialAxis, i}]
	}
	return c.strides[i], c.kernelDilations[i], c.size[axis{kernelSpatialAxis, i}]
}

// split reports whether the windows are strided along spatial axis i. Gather only takes
// contiguous windows, so the axis is split in two, (position / step, position % step),
// making the window contiguous along the first and of size 1 along the second.
func (c *conv) split(i int) bool {
	_, step, count := c.window(i)
	return step > 1 && count > 1
}

// gatherRun returns the number of elements that Gather copies at once: the longest run of
// trailing window axes that is contiguous both in the (split) padded input and in the
// patches. phased tells whether the innermost phase axis is moved to the front
// (plan.phased).
func (c *conv) gatherRun(p *plan, phased bool) int {
	n := len(c.axes.InputSpatial)
	run := 1
	for j := len(p.windowLayout) - 1; j >= 0; j-- {
		if j == p.loopAt-1 && c.prod(p.patches[p.loopAt:p.loopAt+n]) > 1 {
			return run // The enumerated axes separate the window axes in the patches.
		}
		a := p.windowLayout[j]
		count, size := c.size[a], c.size[a]
		if a.kind == inSpatialAxis {
			_, step, windowCount := c.window(a.spatial)
			if c.split(a.spatial) {
				if !phased || j != len(p.windowLayout)-1 {
					return run // The window takes one element of the axis' phase, next in memory.
				}
				size = (size + step - 1) / step
			}
			count = windowCount
		}
		run *= count
		if count != size {
			return run // The window only covers part of the axis.
		}
	}
	return run
}

// patches returns the windows of x, the padded input laid out as plan.windowLayout, for
// all the enumerated positions, laid out as plan.patches.
func (c *conv) patches(x compute.Value) (compute.Value, error) {
	if c.plan.gather {
		return c.gatherPatches(x)
	}
	return c.slicePatches(x)
}

// gatherPatches takes all the windows with one Gather, which copies contiguous runs.
func (c *conv) gatherPatches(x compute.Value) (compute.Value, error) {
	p := &c.plan
	n := len(c.axes.InputSpatial)
	loop := p.patches[p.loopAt : p.loopAt+n]

	// Operand: x with its strided spatial axes split; the windows' start indices.
	var dims, startIndexMap, collapsed, sliceSizes []int
	for _, a := range p.windowLayout {
		if a.kind != inSpatialAxis {
			dims = append(dims, c.size[a])
			sliceSizes = append(sliceSizes, c.size[a])
			continue
		}
		_, step, count := c.window(a.spatial)
		startIndexMap = append(startIndexMap, len(dims))
		if c.split(a.spatial) {
			startIndexMap = append(startIndexMap, len(dims)+1)
			collapsed = append(collapsed, len(dims)+1)
			dims = append(dims, c.size[a]/step, step)
			sliceSizes = append(sliceSizes, count, 1)
		} else {
			dims = append(dims, c.size[a])
			sliceSizes = append(sliceSizes, count)
		}
	}
	x, err := c.reshape(x, dims)
	if err != nil {
		return nil, err
	}
	if p.phased {
		var newPos []int
		if x, newPos, err = frontPhase(c.f, x, dims); err != nil {
			return nil, err
		}
		renumber(newPos, startIndexMap, collapsed, sliceSizes)
	}
	numWindows := c.prod(loop)
	indices := make([]int32, 0, numWindows*len(startIndexMap))
	pos := make([]int, n) // Enumerated position, per spatial axis.
	for range numWindows {
		for _, a := range p.windowLayout {
			if a.kind != inSpatialAxis {
				continue
			}
			spacing, step, _ := c.window(a.spatial)
			start := pos[a.spatial] * spacing
			if c.split(a.spatial) {
				indices = append(indices, int32(start/step), int32(start%step))
			} else {
				indices = append(indices, int32(start))
			}
		}
		next(pos, loop, c.size)
	}
	indicesValue, err := c.f.Constant(indices, append(c.dims(loop), len(startIndexMap))...)
	if err != nil {
		return nil, err
	}
	var offsetAxes []int // Positions of the window axes in the patches: all but the enumerated ones.
	for j := range p.patches {
		if j < p.loopAt || j >= p.loopAt+n {
			offsetAxes = append(offsetAxes, j)
		}
	}
	return c.f.Gather(x, indicesValue, n, offsetAxes, collapsed, startIndexMap, sliceSizes, false)
}

// next advances pos, the enumerated position per spatial axis, in row-major order of the
// enumerated axes loop. It wraps around to zeros after the last position.
func next(pos []int, loop []axis, size map[axis]int) {
	for k := len(loop) - 1; k >= 0; k-- {
		i := loop[k].spatial
		if pos[i]++; pos[i] < size[loop[k]] {
			return
		}
		pos[i] = 0
	}
}

// slicePatches takes each window with a Slice op, which copies element by element, and
// concatenates them: for windows too fragmented for Gather.
func (c *conv) slicePatches(x compute.Value) (compute.Value, error) {
	p := &c.plan
	n := len(c.axes.InputSpatial)
	loop := p.patches[p.loopAt : p.loopAt+n]
	numWindows := c.prod(loop)
	rank := len(p.windowLayout)
	pos := make([]int, n)
	parts := make([]compute.Value, 0, numWindows)
	for range numWindows {
		starts, limits, strides := make([]int, rank), make([]int, rank), make([]int, rank)
		var windowDims []int
		identity := true
		for j, a := range p.windowLayout {
			starts[j], limits[j], strides[j] = 0, c.size[a], 1
			if a.kind != inSpatialAxis {
				windowDims = append(windowDims, c.size[a])
				continue
			}
			spacing, step, count := c.window(a.spatial)
			starts[j], strides[j] = pos[a.spatial]*spacing, step
			limits[j] = starts[j] + (count-1)*step + 1
			identity = identity && starts[j] == 0 && limits[j] == c.size[a] && (step == 1 || count == 1)
			windowDims = append(windowDims, count)
		}
		part := x
		if !identity {
			var err error
			if part, err = c.f.Slice(x, starts, limits, strides); err != nil {
				return nil, err
			}
		}
		if numWindows > 1 {
			var err error
			if part, err = c.reshape(part, slices.Insert(windowDims, p.loopAt, 1)); err != nil {
				return nil, err
			}
		}
		parts = append(parts, part)
		next(pos, loop, c.size)
	}
	if numWindows == 1 {
		return parts[0], nil
	}
	return c.f.Concatenate(p.loopAt, parts...)
}

// reshape returns x reshaped to dims, or x itself if it already has them.
func (c *conv) reshape(x compute.Value, dims []int) (compute.Value, error) {
	shape, err := c.f.Shape(x)
	if err != nil || slices.Equal(shape.Dimensions, dims) {
		return x, err
	}
	return c.f.Reshape(x, dims...)
}

// scalarZero returns a scalar zero of the given dtype, float32 or float64.
func scalarZero(f compute.Function, dtype dtypes.DType) (compute.Value, error) {
	if dtype == dtypes.Float64 {
		return f.Constant([]float64{0})
	}
	return f.Constant([]float32{0})
}
