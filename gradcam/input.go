package gradcam

import (
	"fmt"
	"reflect"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// Input attributions: maps over the input pixels from the gradient of the
// score with respect to the input x [N,C,H,W], computed in the same graph as
// the forward pass. They need no layer (a CAM built for one ignores its
// layers, except [GuidedGradCAM]). Their raw map ([Result.Raw], one entry) is
// at input resolution; the ReLU and normalisation options apply as for the
// CAM family.

// inputMethod is implemented by the methods that differentiate with respect
// to the input. The CAM takes the gradient ∂score/∂x at S points per image
// (the image itself, noisy copies, a path from a baseline), averages it over
// the points, and calls Map(x, ḡ) with x and ḡ channels-first [N,C,H,W].
type inputMethod interface {
	Method
	// samples is the number S of points per image.
	samples() int
	// noiseSigma > 0 asks for noise [S, x's dims...] from NormalNoise(noiseSeed()).
	noiseSigma() float64
	noiseSeed() uint64
	// points returns the S points of each image, [S·N, ...] in the model's
	// layout with point s of image n at s·N + n, or nil for x itself.
	points(x, noise *graph.Node) *graph.Node
	// guided selects guided backpropagation through the model's ReLUs.
	guided() bool
	// needsLayers is true when the method also computes a CAM at layers.
	needsLayers() bool
}

// SaliencyMethod is vanilla gradient saliency (Simonyan et al., 2014):
// map_ij = max_c |∂score/∂x_cij|.
type SaliencyMethod struct{}

func (SaliencyMethod) Name() string                        { return "saliency" }
func (SaliencyMethod) Map(_, g *graph.Node) *graph.Node    { return maxAbsChannel(g) }
func (SaliencyMethod) samples() int                        { return 1 }
func (SaliencyMethod) noiseSigma() float64                 { return 0 }
func (SaliencyMethod) noiseSeed() uint64                   { return 0 }
func (SaliencyMethod) points(_, _ *graph.Node) *graph.Node { return nil }
func (SaliencyMethod) guided() bool                        { return false }
func (SaliencyMethod) needsLayers() bool                   { return false }

// SmoothGradMethod averages the gradient over noisy copies of the image
// (Smilkov et al., 2017): ḡ = (1/S) Σ_s ∂score/∂x at x + σ·ε_s, with
// σ = Sigma · (max x − min x) per image and ε_s standard normal noise
// from [NormalNoise](Seed), laid out [S, N, ...x's dims]; map_ij = max_c |ḡ_cij|.
// The classes explained are chosen on the clean image.
type SmoothGradMethod struct {
	Samples int
	Sigma   float64
	Seed    uint64
}

func (m SmoothGradMethod) Name() string                     { return "smoothgrad" }
func (m SmoothGradMethod) Map(_, g *graph.Node) *graph.Node { return maxAbsChannel(g) }
func (m SmoothGradMethod) samples() int                     { return max(m.Samples, 1) }
func (m SmoothGradMethod) noiseSigma() float64              { return m.Sigma }
func (m SmoothGradMethod) noiseSeed() uint64                { return m.Seed }
func (m SmoothGradMethod) guided() bool                     { return false }
func (m SmoothGradMethod) needsLayers() bool                { return false }
func (m SmoothGradMethod) points(x, noise *graph.Node) *graph.Node {
	rank := x.Rank()
	axes := make([]int, rank-1)
	for i := range axes {
		axes[i] = i + 1
	}
	hi := graph.ReduceAndKeep(x, graph.ReduceMax, axes...)
	lo := graph.ReduceAndKeep(x, graph.ReduceMin, axes...)
	sigma := graph.MulScalar(graph.Sub(hi, lo), m.Sigma) // [N,1,1,1]
	pts := graph.Add(graph.ExpandAxes(x, 0), graph.Mul(graph.ExpandAxes(sigma, 0), noise))
	return mergeLeading(pts)
}

// IntegratedGradientsMethod integrates the gradient along the straight path
// from a constant baseline x₀ (Baseline, in the model's input space: 0 is the
// mean image for ImageNet-normalised models) to x (Sundararajan et al.,
// 2017), with the midpoint rule: ḡ = (1/S) Σ_s ∂score/∂x at x₀ + α_s (x − x₀),
// α_s = (s + 1/2)/S; attribution = (x − x₀) ⊙ ḡ; map_ij = Σ_c attribution_cij
// (signed). Completeness: Σ_ij map ≈ score(x) − score(x₀), to the rule's error.
type IntegratedGradientsMethod struct {
	Steps    int
	Baseline float64
}

func (m IntegratedGradientsMethod) Name() string { return "integratedgradients" }
func (m IntegratedGradientsMethod) Map(x, g *graph.Node) *graph.Node {
	return graph.ReduceSum(graph.Mul(graph.AddScalar(x, -m.Baseline), g), 1)
}
func (m IntegratedGradientsMethod) samples() int        { return max(m.Steps, 1) }
func (m IntegratedGradientsMethod) noiseSigma() float64 { return 0 }
func (m IntegratedGradientsMethod) noiseSeed() uint64   { return 0 }
func (m IntegratedGradientsMethod) guided() bool        { return false }
func (m IntegratedGradientsMethod) needsLayers() bool   { return false }
func (m IntegratedGradientsMethod) points(x, _ *graph.Node) *graph.Node {
	s := m.samples()
	alphas := make([]float32, s)
	for i := range alphas {
		alphas[i] = (float32(i) + 0.5) / float32(s)
	}
	shape := make([]int, x.Rank()+1)
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = s
	alpha := graph.ConvertDType(graph.Reshape(graph.Const(x.Graph(), alphas), shape...), x.DType())
	diff := graph.ExpandAxes(graph.AddScalar(x, -m.Baseline), 0)
	return mergeLeading(graph.AddScalar(graph.Mul(alpha, diff), m.Baseline))
}

// GuidedBackpropMethod is guided backpropagation (Springenberg et al., 2015):
// the gradient at the input with every ReLU's backward pass replaced by one
// that also zeroes negative incoming gradients, R_in = [f_in > 0]·relu(R_out);
// map_ij = max_c |ĝ_cij|. The ReLUs are found in the model's graph (GoMLX's
// Relu, as ONNX Relu nodes and native models build it: max(x, 0) or the
// backend's fused ReLU), so it works for ONNX and native models alike; a
// model without ReLUs is an error.
type GuidedBackpropMethod struct{}

func (GuidedBackpropMethod) Name() string                        { return "guidedbackprop" }
func (GuidedBackpropMethod) Map(_, g *graph.Node) *graph.Node    { return maxAbsChannel(g) }
func (GuidedBackpropMethod) samples() int                        { return 1 }
func (GuidedBackpropMethod) noiseSigma() float64                 { return 0 }
func (GuidedBackpropMethod) noiseSeed() uint64                   { return 0 }
func (GuidedBackpropMethod) points(_, _ *graph.Node) *graph.Node { return nil }
func (GuidedBackpropMethod) guided() bool                        { return true }
func (GuidedBackpropMethod) needsLayers() bool                   { return false }

// GuidedGradCAMMethod multiplies guided backpropagation by the Grad-CAM map
// (Selvaraju et al., 2017): map_ij = cam_ij · max_c |ĝ_cij|, where cam is the
// layers' Grad-CAM map normalised as in the package doc (ReLU, min-max,
// resized to the input, averaged over layers, min-max) and ĝ the guided
// gradient. pytorch-grad-cam multiplies per channel, cam ⊙ ĝ_c; the channel
// maximum of its magnitude is this map.
type GuidedGradCAMMethod struct{}

func (GuidedGradCAMMethod) Name() string                        { return "guidedgradcam" }
func (GuidedGradCAMMethod) Map(_, g *graph.Node) *graph.Node    { return maxAbsChannel(g) }
func (GuidedGradCAMMethod) samples() int                        { return 1 }
func (GuidedGradCAMMethod) noiseSigma() float64                 { return 0 }
func (GuidedGradCAMMethod) noiseSeed() uint64                   { return 0 }
func (GuidedGradCAMMethod) points(_, _ *graph.Node) *graph.Node { return nil }
func (GuidedGradCAMMethod) guided() bool                        { return true }
func (GuidedGradCAMMethod) needsLayers() bool                   { return true }

// The input methods with their default settings.
var (
	Saliency Method = SaliencyMethod{}
	// SmoothGrad: 16 samples, σ = 15% of the image's value range, seed 0.
	SmoothGrad Method = SmoothGradMethod{Samples: 16, Sigma: 0.15}
	// IntegratedGradients: 32 steps from a zero baseline.
	IntegratedGradients Method = IntegratedGradientsMethod{Steps: 32}
	GuidedBackprop      Method = GuidedBackpropMethod{}
	GuidedGradCAM       Method = GuidedGradCAMMethod{}
)

// maxAbsChannel is max_c |g_c| of g [N,C,H,W].
func maxAbsChannel(g *graph.Node) *graph.Node { return graph.ReduceMax(graph.Abs(g), 1) }

// mergeLeading merges the two leading axes, [A,B,...] to [A·B,...]: samples
// with images, or images with their perturbed copies.
func mergeLeading(x *graph.Node) *graph.Node {
	dims := x.Shape().Dimensions
	return graph.Reshape(x, append([]int{dims[0] * dims[1]}, dims[2:]...)...)
}

// inputMaps builds the maps [N,K,H,W] of an input method.
func (c *CAM) inputMaps(scope *model.Scope, im inputMethod, x, noise, logits *graph.Node, acts []*graph.Node, classes, scores *graph.Node, t Target) *graph.Node {
	m := c.runner.Model()
	layout := m.Input().Layout
	n := x.Shape().Dimensions[0]
	xs, logitsP := x, logits
	pts := im.points(x, noise)
	s := 1
	if pts != nil {
		s = im.samples()
		xs = pts
		logitsP, _ = m.Forward(scope, xs, nil)
	}
	if im.guided() {
		entry := graph.Identity(xs)
		count := 0
		logitsP = rewire(logitsP, map[*graph.Node]*graph.Node{xs: entry}, func(orig, clone *graph.Node) *graph.Node {
			if isReLU(orig) {
				count++
				return graph.IdentityWithCustomGradient(clone, func(_, v *graph.Node) *graph.Node { return activation.Relu(v) })
			}
			return clone
		})
		if count == 0 {
			panic(fmt.Errorf("%s needs ReLUs, and model %s has none that convlens recognises", im.Name(), m.Name()))
		}
		xs = entry
	}
	classesP := classes
	if s > 1 {
		classesP = mergeLeading(graph.BroadcastToDims(graph.ExpandAxes(classes, 0), append([]int{s}, classes.Shape().Dimensions...)...))
	}
	scoresP := scores
	if logitsP != logits {
		scoresP = t.rescore(logitsP, classesP)
	}
	var cam *graph.Node
	if im.needsLayers() {
		// The Grad-CAM map, normalised as always, whatever the options.
		plain := *c
		plain.relu, plain.normalize = true, true
		cam = plain.finish(c.layerMaps(GradCAM, logits, acts, scores))
	}
	k := scores.Shape().Dimensions[1]
	xc := channelsFirst(x, layout)
	var maps []*graph.Node
	for ti := range k {
		score := graph.ReduceAllSum(graph.SliceAxis(scoresP, 1, graph.AxisElem(ti)))
		g := graph.Gradient(score, xs)[0]
		if s > 1 {
			dims := g.Shape().Dimensions
			g = graph.ReduceMean(graph.Reshape(g, append([]int{s, n}, dims[1:]...)...), 0)
		}
		mp := im.Map(xc, channelsFirst(g, layout))
		if cam != nil {
			d := cam.Shape().Dimensions
			mp = graph.Mul(mp, graph.Reshape(graph.SliceAxis(cam, 1, graph.AxisElem(ti)), n, d[2], d[3]))
		}
		maps = append(maps, mp)
	}
	return graph.Stack(maps, 1)
}

// isReLU recognises GoMLX's ReLU in a graph by node type and inputs: a fused
// ReLU activation, or max(x, 0) with a constant zero (possibly broadcast or
// reshaped) on either side.
func isReLU(n *graph.Node) bool {
	switch n.Type() {
	case graph.NodeTypeFusedActivation:
		act, ok := fusedActivationType(n)
		return ok && act == compute.ActivationRelu
	case graph.NodeTypeMax:
		in := n.Inputs()
		return len(in) == 2 && (isZeroConstant(in[0]) || isZeroConstant(in[1]))
	}
	return false
}

// isZeroConstant reports whether n is the constant 0 (or -0), through
// broadcasts and reshapes: a Constant node holding a single real number
// (integer or floating point, not bool or complex) equal to zero, as a
// scalar or a one-element vector. One-element tensors of rank 2 or more
// are not recognised, as before this check was written on node types.
func isZeroConstant(n *graph.Node) bool {
	for {
		switch n.Type() {
		case graph.NodeTypeConstant:
			t := n.ConstantValue()
			if t == nil || t.Shape().Size() != 1 || t.Shape().Rank() > 1 {
				return false
			}
			return isZeroValue(t.Value())
		case graph.NodeTypeBroadcastInDim, graph.NodeTypeReshape:
			n = n.Inputs()[0]
		default:
			return false
		}
	}
}

// isZeroValue reports whether v, the value of a one-element tensor of rank 0
// or 1 ([tensors.Tensor.Value]: a Go scalar or a one-element slice), is a
// real number equal to zero. Half-precision floats are compared through
// their float32 value; NaN is not zero.
func isZeroValue(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		if rv.Len() != 1 {
			return false
		}
		rv = rv.Index(0)
	}
	if !rv.IsValid() {
		return false
	}
	if rv.CanInterface() {
		if h, ok := rv.Interface().(interface{ Float32() float32 }); ok {
			return h.Float32() == 0
		}
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return rv.Float() == 0
	}
	return false
}

// fusedActivationType returns the activation a fused activation node
// applies, read from the node's typed inputs: GoMLX keeps them in
// *graph.nodeInputsFusedActivation (fields x *Node, cfg
// compute.ActivationConfig), which has no exported accessor, so the cfg
// field is read by reflection (a read of an int field, no unsafe). ok is
// false if n is not a fused activation or GoMLX changed that layout, in
// which case no fused ReLU is recognised (and TestFusedActivationType fails).
func fusedActivationType(n *graph.Node) (act compute.ActivationType, ok bool) {
	if n.Type() != graph.NodeTypeFusedActivation {
		return 0, false
	}
	v := reflect.ValueOf(n).Elem().FieldByName("inputs")
	if v.Kind() != reflect.Interface || v.IsNil() {
		return 0, false
	}
	if v = v.Elem(); v.Kind() != reflect.Pointer || v.IsNil() {
		return 0, false
	}
	if v = v.Elem(); v.Kind() != reflect.Struct {
		return 0, false
	}
	cfg := v.FieldByName("cfg")
	if !cfg.IsValid() || cfg.Type() != reflect.TypeFor[compute.ActivationConfig]() {
		return 0, false
	}
	return compute.ActivationType(cfg.FieldByName("Type").Int()), true
}
