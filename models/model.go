// Package models says what a model is for convlens and how one is loaded.
//
// A [Model] is a CNN classifier (or regressor) that convlens can look inside:
// it builds its forward pass into a GoMLX graph and hands back, from that same
// graph, the logits and the activations of any set of named layers. Keeping
// both in one graph is what lets Grad-CAM differentiate the logits with respect
// to a layer's activation.
//
// Two adapters produce a Model:
//
//   - [LoadONNX] reads an ONNX file with onnx-gomlx. A layer is named by the
//     output name of its ONNX node, e.g. "/layer4/layer4.1/relu_1/Relu_output_0"
//     for torchvision's ResNet-18; `convlens layers` lists them.
//   - [NewNative] wraps a model written in GoMLX. The model marks its layers
//     with a [Tap] and is then used exactly like an ONNX model.
//
// A [Runner] executes a model on a backend (package models/backend picks
// one), compiling each combination of requested layers and input shape once.
// [Input] describes the image tensor a model expects and [Input.Tensor] turns
// decoded images into it.
//
// This package touches only the files it is asked to load and never the
// network. Around it, one package per concern: models/backend chooses the
// compute backend (the only network side effect, the XLA plugin install);
// models/embedded holds the models built into convlens with their weights
// and samples; models/pretrained downloads the ImageNet models; models/modeltest
// serves tests above this floor.
package models

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/convlens/convlens/internal/check"

	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// Model is a network convlens can run and look inside.
type Model interface {
	// Name identifies the model in reports and messages.
	Name() string

	// Input describes the image tensor the model expects.
	Input() Input

	// Labels returns the class names, indexed by logit, or nil when the model has none.
	Labels() []string

	// Layers lists every layer in graph order, with its output shape for a batch of one.
	Layers() []Layer

	// Store holds the model's weights.
	Store() *model.Store

	// Forward builds the forward pass of x into x's graph. It returns the
	// logits, shaped [batch, classes], and the activation of each named layer,
	// in the order asked. Like all GoMLX graph-building code it panics on
	// error; callers validate layer names first with [FindLayer].
	Forward(scope *model.Scope, x *graph.Node, layers []string) (logits *graph.Node, activations []*graph.Node)
}

// Layer describes one layer of a model.
type Layer struct {
	// Name addresses the layer in [Model.Forward] and on the command line.
	Name string
	// Op is the operation that produces it: the ONNX op type, or the node type of a native model.
	Op string
	// Shape is its output shape for a batch of one.
	Shape shapes.Shape
	// Module is the PyTorch module path the layer ran in ("layer4.1.relu_1"),
	// read from the node names torch.onnx writes; "" when the model does not
	// say. [FindLayer] takes module paths as names.
	Module string
	// Local is set on a token layer whose positions reach the output only
	// through one token: in a ViT, every layer after the last attention,
	// whose patch tokens never reach the class token the head reads. A CAM
	// there is blank, so [LastSpatialLayer] passes over it.
	Local bool
}

// Spatial reports whether the layer's output reads as a map with spatial
// axes ([Layer.Grid]) whose height or width is larger than one.
func (l Layer) Spatial(layout Layout) bool {
	g, ok := l.Grid(layout)
	return ok && (g.Height > 1 || g.Width > 1)
}

// String formats a layer as `convlens layers` prints it: name, op, shape
// and, where known, module path, tab-separated.
func (l Layer) String() string {
	s := fmt.Sprintf("%s\t%s\t%v", l.Name, l.Op, l.Shape.Dimensions)
	if l.Module != "" {
		s += "\t" + l.Module
	}
	return s
}

// FindLayer returns the layer of m called name, or else the layer a PyTorch
// module path names: the output of the last node inside that module
// (`layer4`, `features.29`, `features[-1]`, `model.encoder.layers[-1].ln_1`),
// as [Layer.Module] records it. An unknown name yields an error that lists
// the closest existing names, so a typo can be fixed from the message alone.
func FindLayer(m Model, name string) (Layer, error) {
	if check.IsNil(m) {
		return Layer{}, errNilModel
	}
	layers := m.Layers()
	for _, l := range layers {
		if l.Name == name {
			return l, nil
		}
	}
	i, err := moduleLayer(layers, name)
	if err != nil {
		return Layer{}, fmt.Errorf("model %s: %w", m.Name(), err)
	}
	if i >= 0 {
		return layers[i], nil
	}
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = l.Name
	}
	return Layer{}, fmt.Errorf("model %s has no layer %q; closest: %s (list all with `convlens layers`)",
		m.Name(), name, strings.Join(closest(name, names, 3), ", "))
}

// errNilModel is what the functions taking a model return for a nil one.
var errNilModel = errors.New("models: model m is nil: load one with models.LoadONNX or embedded.Open, or build one with models.NewNative")

// SpatialLayer is [FindLayer] for layers that must have spatial axes, as a CAM or a feature map needs.
func SpatialLayer(m Model, name string) (Layer, error) {
	l, err := FindLayer(m, name)
	if err != nil {
		return l, err
	}
	if !l.Spatial(m.Input().Layout) {
		if l.Name != name {
			name = fmt.Sprintf("%s (%s)", name, l.Name)
		}
		return l, fmt.Errorf("layer %q of model %s has shape %v, which has no spatial axes: pick a convolutional layer (list them with `convlens layers`)",
			name, m.Name(), l.Shape.Dimensions)
	}
	return l, nil
}

// CheckClasses refuses a model whose output, its last layer, is logits of
// no classes ([N,0]): there is nothing to explain.
func CheckClasses(m Model) error {
	if check.IsNil(m) {
		return errNilModel
	}
	if layers := m.Layers(); len(layers) > 0 {
		if out := layers[len(layers)-1]; out.Shape.Rank() == 2 && out.Shape.Dimensions[1] == 0 {
			return fmt.Errorf("model %s has no classes to explain: its output %s is shaped %v", m.Name(), out.Name, out.Shape.Dimensions)
		}
	}
	return nil
}

// LastSpatialLayer is the last layer of m, in graph order, with spatial axes
// and a floating-point activation, and not [Layer.Local]: the output of the
// last convolutional block before the classifier, or a vision transformer's
// last tokens before its last attention, where a CAM is usually computed and
// where gradcam and every command compute one when no layer is given. The
// model's output is never chosen: a segmentation model's output has spatial
// axes, but the gradient of a score with respect to it is the score's own
// weights, not a map of what made it.
func LastSpatialLayer(m Model) (Layer, error) {
	if check.IsNil(m) {
		return Layer{}, errNilModel
	}
	layers := m.Layers()
	for i := len(layers) - 2; i >= 0; i-- {
		l := layers[i]
		if l.Spatial(m.Input().Layout) && l.Shape.DType.IsFloat() && !l.Local {
			return l, nil
		}
	}
	return Layer{}, fmt.Errorf("model %s has no layer with spatial axes to compute a heat map at", m.Name())
}

// closest returns up to n names nearest to name by edit distance, nearest first.
func closest(name string, names []string, n int) []string {
	type scored struct {
		name string
		dist int
	}
	all := make([]scored, len(names))
	for i, s := range names {
		all[i] = scored{s, editDistance(strings.ToLower(name), strings.ToLower(s))}
	}
	slices.SortStableFunc(all, func(a, b scored) int { return a.dist - b.dist })
	out := make([]string, 0, n)
	for _, s := range all[:min(n, len(all))] {
		out = append(out, s.name)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
