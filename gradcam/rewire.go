package gradcam

import (
	"github.com/gomlx/gomlx/core/graph"
)

// Graph surgery. A model builds its forward pass into the graph once; the
// methods that must run part of it again differently (Ablation-CAM with a
// channel zeroed, guided backpropagation with ReLUs that pass only positive
// gradients) rebuild the part of the graph downstream of a node by cloning
// every node on a path from it to the output, with the inputs rewired. Nodes
// that do not depend on it are shared. This works the same for ONNX and
// native models, since it only looks at the graph.

// dependsOn reports whether out is computed from node.
func dependsOn(out, node *graph.Node) bool {
	memo := map[graph.NodeId]bool{}
	var visit func(n *graph.Node) bool
	visit = func(n *graph.Node) bool {
		if n == node {
			return true
		}
		if v, ok := memo[n.Id()]; ok {
			return v
		}
		memo[n.Id()] = false
		for _, in := range n.Inputs() {
			if visit(in) {
				memo[n.Id()] = true
				return true
			}
		}
		return false
	}
	return visit(out)
}

// rewire rebuilds out with the nodes in replace (by original) replaced by
// their values. Every node on a path from a replaced node to out is cloned
// with its inputs rewired; hook, when not nil, is then applied to each clone
// (it gets the original and the clone and returns what consumers should use).
// Nodes not downstream of a replaced node are shared with the original graph.
func rewire(out *graph.Node, replace map[*graph.Node]*graph.Node, hook func(orig, clone *graph.Node) *graph.Node) *graph.Node {
	done := map[graph.NodeId]*graph.Node{}
	var visit func(n *graph.Node) *graph.Node
	visit = func(n *graph.Node) *graph.Node {
		if r, ok := replace[n]; ok {
			return r
		}
		if r, ok := done[n.Id()]; ok {
			return r
		}
		inputs := n.Inputs()
		newInputs := make([]*graph.Node, len(inputs))
		changed := false
		for i, in := range inputs {
			newInputs[i] = visit(in)
			changed = changed || newInputs[i] != in
		}
		r := n
		if changed {
			r = n.CloneWithInputs(newInputs...)
			if hook != nil {
				r = hook(n, r)
			}
		}
		done[n.Id()] = r
		return r
	}
	return visit(out)
}
