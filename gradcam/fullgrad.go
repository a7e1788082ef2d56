package gradcam

import (
	"slices"

	"github.com/gomlx/gomlx/core/graph"
)

// FullGradMethod is FullGrad (Srinivas and Fleuret, 2019) as pytorch-grad-cam
// computes it: the sum of an input-gradient term and one bias-gradient term
// per layer with a bias,
// map = Σ_c s(|x_c ⊙ ∂score/∂x_c|) + Σ_layers Σ_k r(s(|b_k · ∂score/∂z_k|)),
// where z is the layer's output (bias included, before any activation), b
// its bias, s min-max scales each channel of each image,
// (v − min) / (max − min + 1e-7), and r resizes to the input (bilinear, as
// the CAM family). The layers with a bias
// are the additions of a per-channel constant to a 4-D activation in the
// model's graph: each convolution with a bias, where ONNX exports fold
// BatchNorm into the convolution before it (pytorch-grad-cam takes the
// BatchNorm's effective bias, β − μγ/√(σ²+ε), and its output gradient, which
// are the folded convolution's). It needs no layer; its raw map is at input
// resolution. One forward and one backward pass. A model whose graph adds
// its biases otherwise (the embedded native models add theirs to im2col
// matrices) gets the input-gradient term alone.
type FullGradMethod struct{}

// FullGrad is [FullGradMethod].
var FullGrad Method = FullGradMethod{}

func (FullGradMethod) Name() string { return "fullgrad" }

// Map is the input-gradient term alone: Σ_c s(|x_c ⊙ g_c|) of x and g [N,C,H,W].
func (FullGradMethod) Map(x, g *graph.Node) *graph.Node {
	return graph.ReduceSum(minMax(graph.Abs(graph.Mul(x, g))), 1)
}
func (FullGradMethod) guided() bool      { return false }
func (FullGradMethod) needsLayers() bool { return false }

// biasAdd is one layer with a bias: its output z [N,...] and its bias b,
// broadcastable to z, with the channel axis of z.
type biasAdd struct {
	z, b *graph.Node
	axis int
}

// biasAdds finds the layers with a bias on the path from x to logits: Add
// nodes of rank 4 with one operand computed from x and the other a
// per-channel constant ([1,C,1,1] channels-first, [1,1,1,C] channels-last)
// that does not depend on x. They are sorted by node id, the order the
// graph built them in.
func biasAdds(logits, x *graph.Node) []biasAdd {
	fromX := map[graph.NodeId]bool{}
	var depends func(n *graph.Node) bool
	depends = func(n *graph.Node) bool {
		if n == x {
			return true
		}
		if v, ok := fromX[n.Id()]; ok {
			return v
		}
		fromX[n.Id()] = false
		v := false
		for _, in := range n.Inputs() {
			if depends(in) {
				v = true
			}
		}
		fromX[n.Id()] = v
		return v
	}
	depends(logits)
	var out []biasAdd
	seen := map[graph.NodeId]bool{}
	var visit func(n *graph.Node)
	visit = func(n *graph.Node) {
		if seen[n.Id()] || !fromX[n.Id()] {
			return
		}
		seen[n.Id()] = true
		in := n.Inputs()
		if n.Type() == graph.NodeTypeAdd && len(in) == 2 && n.Rank() == 4 {
			for i, b := range in {
				a := in[1-i]
				if fromX[b.Id()] || !fromX[a.Id()] || b.Rank() != 4 {
					continue
				}
				if axis, ok := channelAxis(b.Shape().Dimensions, n.Shape().Dimensions); ok {
					out = append(out, biasAdd{z: n, b: b, axis: axis})
				}
			}
		}
		for _, i := range in {
			visit(i)
		}
	}
	visit(logits)
	slices.SortFunc(out, func(p, q biasAdd) int { return int(p.z.Id()) - int(q.z.Id()) })
	return out
}

// channelAxis returns the axis, 1 or 3, along which bias dims b vary per
// channel of z dims, all its other dimensions being 1.
func channelAxis(b, z []int) (int, bool) {
	for _, axis := range []int{1, 3} {
		ok := true
		for i, d := range b {
			if i == axis && d != z[i] || i != axis && d != 1 {
				ok = false
			}
		}
		if ok && z[axis] > 1 {
			return axis, true
		}
	}
	return 0, false
}

// fullGradMaps builds FullGrad's maps [N,K,H,W] at the input, in the graph
// of the model's forward pass from x to logits, scores [N,K].
func (c *CAM) fullGradMaps(x, logits, scores *graph.Node) *graph.Node {
	in := c.runner.Model().Input()
	adds := biasAdds(logits, x)
	wrt := []*graph.Node{x}
	for _, a := range adds {
		wrt = append(wrt, a.z)
	}
	xc := channelsFirst(x, in.Layout)
	k := scores.Shape().Dimensions[1]
	maps := make([]*graph.Node, k)
	for ti := range k {
		grads := graph.Gradient(graph.ReduceAllSum(graph.SliceAxis(scores, 1, graph.AxisElem(ti))), wrt...)
		m := FullGrad.Map(xc, channelsFirst(grads[0], in.Layout))
		for i, a := range adds {
			t := graph.Abs(graph.Mul(grads[i+1], a.b))
			if a.axis == 3 {
				t = graph.TransposeAllAxes(t, 0, 3, 1, 2)
			}
			m = graph.Add(m, graph.ReduceSum(resize(minMax(t), in.Height, in.Width), 1))
		}
		maps[ti] = m
	}
	return graph.Stack(maps, 1)
}
