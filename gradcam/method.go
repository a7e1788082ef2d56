package gradcam

import "github.com/gomlx/gomlx/core/graph"

// Method turns a layer's activation and the gradient of the target score into
// a signed map. The CAM family differs only here: how the channels are weighted.
type Method interface {
	// Name is the method's name on the command line, e.g. "gradcam".
	Name() string
	// Map builds the signed map [N,h,w] from the activation a and gradient g,
	// both [N,C,h,w].
	Map(a, g *graph.Node) *graph.Node
}

// ChannelWeights is a Method whose map is Σ_k w_k A_k for channel weights w
// computed from the activation and gradient.
type ChannelWeights struct {
	// MethodName is returned by Name.
	MethodName string
	// Weights returns w [N,C] from a and g [N,C,h,w].
	Weights func(a, g *graph.Node) *graph.Node
}

// Name returns the method's name.
func (m ChannelWeights) Name() string { return m.MethodName }

// Map weights the activation's channels and sums them.
func (m ChannelWeights) Map(a, g *graph.Node) *graph.Node {
	return graph.Einsum("nc,nchw->nhw", m.Weights(a, g), a)
}

// GradCAM weights each channel by its spatially averaged gradient
// (Selvaraju et al., 2017).
var GradCAM Method = ChannelWeights{
	MethodName: "gradcam",
	Weights:    func(_, g *graph.Node) *graph.Node { return graph.ReduceMean(g, 2, 3) },
}

// Methods lists the methods by name, for command lines.
var Methods = map[string]Method{GradCAM.Name(): GradCAM}
