// Package convgrad gives GoMLX's grouped convolutions (depthwise included) a gradient
// with respect to their input that is one grouped convolution, instead of GoMLX's one
// convolution per group.
//
// GoMLX v0.28 differentiates a convolution with feature_group_count G by splitting
// the input, the kernel and the output gradient into G slices and convolving each
// pair: an early-layer Grad-CAM of EfficientNet-B0 becomes thousands of
// single-channel convolutions, each a separate op with its own overhead. The input
// gradient of a grouped convolution is itself a grouped convolution (the transposed
// convolution of each group), which is what this package emits:
//
//	dx = ConvGeneral(dy dilated by the strides, reversed kernel with each group's
//	                 input and output channels swapped, groups G)
//
// Importing the package (models does) replaces the ConvGeneral entry of
// graph.VJPRegistration once. Convolutions without channel groups, with input
// dilations or with batch groups keep GoMLX's gradient, and so does the gradient
// with respect to the kernel (Grad-CAM never asks for it: the backend drops it as dead
// code).
//
// GoMLX keeps a convolution's parameters unexported; they are read with reflect
// (params.go), and a test fails if GoMLX changes their layout.
package convgrad

import (
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
)

// upstream is GoMLX's own gradient of ConvGeneral.
var upstream = graph.VJPRegistration[graph.NodeTypeConvGeneral]

func init() {
	if upstream == nil {
		return
	}
	graph.VJPRegistration[graph.NodeTypeConvGeneral] = func(node *graph.Node, vjps []*graph.Node, outputShape shapes.Shape) []*graph.Node {
		grads := upstream(node, vjps, outputShape)
		p, ok := readParams(node)
		if !ok || p.groups <= 1 || p.batchGroups > 1 || dilated(p.inputDilations) || len(grads) != 2 {
			return grads
		}
		grads[0] = inputGrad(node, vjps[0], p)
		return grads
	}
}

func dilated(d []int) bool {
	for _, v := range d {
		if v != 1 {
			return true
		}
	}
	return false
}

// inputGrad is the gradient of the grouped convolution node with respect to its
// input x, given the gradient v of its output.
func inputGrad(node, v *graph.Node, p params) *graph.Node {
	x, kernel := node.Inputs()[0], node.Inputs()[1]
	a := p.axes
	nd := len(a.InputSpatial)
	g := p.groups
	cin := x.Shape().Dimensions[a.InputChannels]
	cout := kernel.Shape().Dimensions[a.KernelOutputChannels]

	// Kernel to [Cout, Cin/G, spatial...], then each group's in and out channels
	// swapped: [Cin, Cout/G, spatial...], spatially reversed.
	perm := append([]int{a.KernelOutputChannels, a.KernelInputChannels}, a.KernelSpatial...)
	k := graph.TransposeAllDims(kernel, perm...)
	ks := k.Shape().Dimensions[2:]
	k = graph.Reshape(k, append([]int{g, cout / g, cin / g}, ks...)...)
	swap := []int{0, 2, 1}
	for i := range nd {
		swap = append(swap, 3+i)
	}
	k = graph.TransposeAllDims(k, swap...)
	k = graph.Reshape(k, append([]int{cin, cout / g}, ks...)...)
	spatial := make([]int, nd)
	for i := range nd {
		spatial[i] = 2 + i
	}
	k = graph.Reverse(k, spatial...)

	// The transposed convolution: the output gradient dilated by the strides, padded
	// so that each input position meets exactly the windows that read it.
	strides := make([]int, nd)
	kdil := make([]int, nd)
	pads := make([][2]int, nd)
	for i := range nd {
		s, d := at(p.strides, i), at(p.kernelDilations, i)
		strides[i], kdil[i] = s, d
		span := (ks[i]-1)*d + 1
		in := x.Shape().Dimensions[a.InputSpatial[i]]
		out := node.Shape().Dimensions[a.OutputSpatial[i]]
		var lo int
		if len(p.paddings) > 0 {
			lo = p.paddings[i][0]
		}
		dilatedOut := (out-1)*s + 1
		pads[i] = [2]int{span - 1 - lo, in + lo - dilatedOut}
	}
	rev := graph.ConvolveAxesConfig{
		InputBatch: a.OutputBatch, InputChannels: a.OutputChannels, InputSpatial: a.OutputSpatial,
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: spatial,
		OutputBatch: a.InputBatch, OutputChannels: a.InputChannels, OutputSpatial: a.InputSpatial,
	}
	return graph.ConvGeneral(v, k, rev, nil, pads, strides, kdil, g, 1)
}

// at is a per-axis parameter, 1 where GoMLX left the list empty.
func at(v []int, i int) int {
	if len(v) == 0 {
		return 1
	}
	return v[i]
}
