package gradcam

import (
	"fmt"
	"reflect"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
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
// to the input. The CAM takes the gradient ∂score/∂x, at the image itself
// or averaged over the points of a [pointMethod], and calls Map(x, ḡ) with
// x and ḡ channels-first [N,C,H,W].
type inputMethod interface {
	Method
	// guided selects guided backpropagation through the model's ReLUs.
	guided() bool
	// needsLayers is true when the method also computes a CAM at layers.
	needsLayers() bool
}

// pointMethod is a method whose gradient is averaged over S points of each
// image (noisy copies, a path from a baseline) instead of taken at the
// image. [CAM.explainPoints] evaluates the points in calls of the model of
// at most [Builder.PointsPerCall] points. An input method among them
// averages the gradient at the input; a [layerPointMethod] the powers of
// the gradient at the layers.
type pointMethod interface {
	Method
	// samples is the number S of points per image.
	samples() int
	// pointInput returns what points needs for points first..first+count−1
	// of images img..img+n−1 of a batch of total images, each of dims (x's
	// dims without the batch axis).
	pointInput(first, count, img, n, total int, dims []int) *tensors.Tensor
	// points returns count points of each image of x [N,...], from in
	// (what pointInput returned), [count·N, ...] in the model's layout with
	// point s of image n at s·N + n.
	points(x, in *graph.Node) *graph.Node
}

// layerPointMethod is a point method of the CAM family: the CAM averages
// the first moments() powers of the layers' gradient over the points,
// D_p = (1/S) Σ_s g_sᵖ with g_s = ∂score/∂A at point s, and the method's
// terms (see termsMethod) come from momentTerms(A, [D₁, ..., D_m]), A the
// activation of the image itself. terms(a, g) is momentTerms(a, g, g², ...),
// the method at a single point.
type layerPointMethod interface {
	pointMethod
	termsMethod
	moments() int
	momentTerms(a *graph.Node, d []*graph.Node) *graph.Node
}

// SaliencyMethod is vanilla gradient saliency (Simonyan et al., 2014):
// map_ij = max_c |∂score/∂x_cij|.
type SaliencyMethod struct{}

func (SaliencyMethod) Name() string                     { return "saliency" }
func (SaliencyMethod) Map(_, g *graph.Node) *graph.Node { return maxAbsChannel(g) }
func (SaliencyMethod) guided() bool                     { return false }
func (SaliencyMethod) needsLayers() bool                { return false }

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
func (m SmoothGradMethod) guided() bool                     { return false }
func (m SmoothGradMethod) needsLayers() bool                { return false }

func (m SmoothGradMethod) pointInput(first, count, img, n, total int, dims []int) *tensors.Tensor {
	return noiseInput(m.Seed, first, count, img, n, total, dims)
}

// points are x + σ·ε, σ = Sigma·(max x − min x) per image.
func (m SmoothGradMethod) points(x, noise *graph.Node) *graph.Node {
	rank := x.Rank()
	axes := make([]int, rank-1)
	for i := range axes {
		axes[i] = i + 1
	}
	hi := graph.ReduceAndKeep(x, graph.ReduceMax, axes...)
	lo := graph.ReduceAndKeep(x, graph.ReduceMin, axes...)
	return noisyPoints(x, noise, graph.MulScalar(graph.Sub(hi, lo), m.Sigma)) // σ [N,1,1,1]
}

// noiseInput is the noise ε of points first..first+count−1 of images
// img..img+n−1 of a batch of total images, [count, n, dims...]: the part of
// NormalNoise(seed, S·total·size) laid out [S, total, dims...] that they take.
func noiseInput(seed uint64, first, count, img, n, total int, dims []int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	noise := make([]float32, count*n*size)
	for s := range count {
		normalNoiseAt(noise[s*n*size:(s+1)*n*size], seed, ((first+s)*total+img)*size)
	}
	return tensors.FromFlatDataAndDimensions(noise, append([]int{count, n}, dims...)...)
}

// noisyPoints are the points x + σ·ε [count·N, ...] of x [N,...] and the
// noise ε [count,N,...], for σ [N,1,...] or a scalar.
func noisyPoints(x, noise, sigma *graph.Node) *graph.Node {
	if sigma.Rank() > 0 {
		sigma = graph.ExpandAxes(sigma, 0)
	}
	return mergeLeading(graph.Add(graph.ExpandAxes(x, 0), graph.Mul(sigma, graph.ConvertDType(noise, x.DType()))))
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
func (m IntegratedGradientsMethod) samples() int      { return max(m.Steps, 1) }
func (m IntegratedGradientsMethod) guided() bool      { return false }
func (m IntegratedGradientsMethod) needsLayers() bool { return false }

// pointInput is the α of the points, [count] (float32).
func (m IntegratedGradientsMethod) pointInput(first, count, _, _, _ int, _ []int) *tensors.Tensor {
	s := m.samples()
	alphas := make([]float32, count)
	for i := range alphas {
		alphas[i] = (float32(first+i) + 0.5) / float32(s)
	}
	return tensors.FromFlatDataAndDimensions(alphas, count)
}

func (m IntegratedGradientsMethod) points(x, alphas *graph.Node) *graph.Node {
	shape := make([]int, x.Rank()+1)
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = alphas.Shape().Dimensions[0]
	alpha := graph.ConvertDType(graph.Reshape(alphas, shape...), x.DType())
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

func (GuidedBackpropMethod) Name() string                     { return "guidedbackprop" }
func (GuidedBackpropMethod) Map(_, g *graph.Node) *graph.Node { return maxAbsChannel(g) }
func (GuidedBackpropMethod) guided() bool                     { return true }
func (GuidedBackpropMethod) needsLayers() bool                { return false }

// GuidedGradCAMMethod multiplies guided backpropagation by the Grad-CAM map
// (Selvaraju et al., 2017): map_ij = cam_ij · max_c |ĝ_cij|, where cam is the
// layers' Grad-CAM map normalised as in the package doc (ReLU, min-max,
// resized to the input, averaged over layers, min-max) and ĝ the guided
// gradient. pytorch-grad-cam multiplies per channel, cam ⊙ ĝ_c; the channel
// maximum of its magnitude is this map.
type GuidedGradCAMMethod struct{}

func (GuidedGradCAMMethod) Name() string                     { return "guidedgradcam" }
func (GuidedGradCAMMethod) Map(_, g *graph.Node) *graph.Node { return maxAbsChannel(g) }
func (GuidedGradCAMMethod) guided() bool                     { return true }
func (GuidedGradCAMMethod) needsLayers() bool                { return true }

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

// explainPoints runs a point method: the gradients at the points, in calls
// of at most [Builder.PointsPerCall] points (see pointPlan), summed over the
// calls into their means (the mean gradient ḡ [N,K,...x's dims] at the
// input, or for a layerPointMethod the means of its powers at each layer),
// then the maps from the means. Each call also runs the model on its images
// as they are, for their logits and classes (and a layer method's
// activations): one forward pass per call is cheaper in memory than a graph
// of its own, which would hold its own copy of the weights.
func (c *CAM) explainPoints(pm pointMethod, x *tensors.Tensor, t Target, given *tensors.Tensor) (*Result, error) {
	dims := x.Shape().Dimensions
	n, s := dims[0], pm.samples()
	if err := c.checkPasses(pm.Name(), n, fmt.Sprintf("(%d points of each image)", s), "use fewer samples or steps"); err != nil {
		return nil, err
	}
	// The call's outputs: logits, classes, then the sums over its points
	// (summed over the calls too), then what is kept from the first call
	// (a layer method's activations).
	var sums, kept [][]float32
	var sumDims, keptDims [][]int
	var logits []float32
	var classes []int32 // [N,K]
	var k, numClasses, numSums int
	pl := c.plan(n, s)
	fn, key := c.pointsGraph(pm, t, pl.per), c.key("points-chunk", t, fmt.Sprint(pl.per))
	batch := []*tensors.Tensor{x}
	if given != nil {
		batch = append(batch, given)
	}
	err := pl.run(batch, func(p, skip, first int, group []*tensors.Tensor) error {
		keep := make([]float32, pl.per) // 0 for the points an earlier call evaluated
		for j := skip; j < pl.per; j++ {
			keep[j] = 1
		}
		in := pm.pointInput(p, pl.per, first, group[0].Shape().Dimensions[0], n, dims[1:])
		defer in.FinalizeAll()
		args := []any{group[0]}
		if given != nil {
			args = append(args, group[1])
		}
		outs, err := c.exec(key, fn, append(args, in, keep)...)
		if err != nil {
			return err
		}
		defer finalizeAll(outs)
		if sums == nil {
			k, numClasses = outs[1].Shape().Dimensions[1], outs[0].Shape().Dimensions[1]
			logits, classes = make([]float32, n*numClasses), make([]int32, n*k)
			numSums = 1
			if _, ok := pm.(layerPointMethod); ok {
				numSums = len(c.layers)
			}
			for i, o := range outs[2:] {
				d := append([]int{n}, o.Shape().Dimensions[1:]...)
				buf := make([]float32, o.Shape().Size()/o.Shape().Dimensions[0]*n)
				if i < numSums {
					sums, sumDims = append(sums, buf), append(sumDims, d)
				} else {
					kept, keptDims = append(kept, buf), append(keptDims, d)
				}
			}
		}
		if p == 0 {
			copy(logits[first*numClasses:], tensors.MustCopyFlatData[float32](outs[0]))
			copy(classes[first*k:], tensors.MustCopyFlatData[int32](outs[1]))
			for i, o := range outs[2+numSums:] {
				size := len(kept[i]) / n
				copy(kept[i][first*size:], tensors.MustCopyFlatData[float32](o))
			}
		}
		for i, o := range outs[2 : 2+numSums] {
			size := len(sums[i]) / n
			if err := tensors.ConstFlatData(o, func(v []float32) { // [G,K,...]
				dst := sums[i][first*size:]
				for j, u := range v {
					dst[j] += u
				}
			}); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	final := []any{tensors.FromFlatDataAndDimensions(logits, n, numClasses), tensors.FromFlatDataAndDimensions(classes, n, k), x}
	for i, sum := range sums {
		for j := range sum {
			sum[j] /= float32(s)
		}
		final = append(final, tensors.FromFlatDataAndDimensions(sum, sumDims[i]...))
	}
	for i, v := range kept {
		final = append(final, tensors.FromFlatDataAndDimensions(v, keptDims[i]...))
	}
	outs, err := c.exec(c.key("points-maps", t), c.mapsGraph(t, func(_ *graph.Node, inputs []*graph.Node) []*graph.Node {
		x, means := inputs[0], inputs[1:]
		lm, ok := pm.(layerPointMethod)
		if !ok {
			mean := means[0]
			gs := make([]*graph.Node, mean.Shape().Dimensions[1])
			for ti := range gs {
				gs[ti] = graph.Reshape(graph.SliceAxis(mean, 1, graph.AxisElem(ti)), x.Shape().Dimensions...)
			}
			return []*graph.Node{c.gradientMaps(pm.(inputMethod), x, gs, nil)}
		}
		layers := len(c.layers)
		raws := make([]*graph.Node, layers)
		for li := range raws {
			d, a := means[li], means[layers+li] // [N,K,M,C,h,w], [N,C,h,w]
			perTarget := make([]*graph.Node, d.Shape().Dimensions[1])
			for ti := range perTarget {
				dt := graph.SliceAxis(d, 1, graph.AxisElem(ti))
				ms := make([]*graph.Node, lm.moments())
				for mi := range ms {
					ms[mi] = graph.Reshape(graph.SliceAxis(dt, 2, graph.AxisElem(mi)), a.Shape().Dimensions...)
				}
				perTarget[ti] = c.reduceTerms(lm.momentTerms(a, ms))
			}
			raws[li] = graph.Stack(perTarget, 1)
		}
		return raws
	}), final...)
	if err != nil {
		return nil, err
	}
	return c.result(outs)
}

// pointsGraph returns the graph of one call of the model for a point
// method: inputs a group of G images x, for class targets their classes
// [G,K] (int32), the points' input (see pointMethod.pointInput) for per
// points of each image, and a weight [per] (1, or 0 for a point to leave
// out); outputs the logits of x itself, the classes [G,K] explained (chosen
// on them), then the weighted sums over the points: of an input method,
// the gradient of each target's score, [G,K,...x's dims]; of a
// layerPointMethod, per layer, the gradient's powers at the layer,
// [G,K,M,C,h,w], followed by each layer's activation of x itself [G,C,h,w].
func (c *CAM) pointsGraph(pm pointMethod, t Target, per int) func(*model.Scope, []*graph.Node) []*graph.Node {
	m := c.runner.Model()
	lm, onLayers := pm.(layerPointMethod)
	var layers []string
	if onLayers {
		layers = c.layers
	}
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		x, rest := inputs[0], inputs[1:]
		var given *graph.Node
		if t.needsClasses() {
			given, rest = rest[0], rest[1:]
		}
		in, keep := rest[0], rest[1]
		dims := x.Shape().Dimensions
		logits, acts := m.Forward(scope, x, layers)
		logits = c.logits(t, logits)
		classes, _ := t.scores(logits, given)
		g, k := dims[0], classes.Shape().Dimensions[1]
		xs := pm.points(x, in)
		logitsP, actsP := m.Forward(scope, xs, layers)
		logitsP = c.logits(t, logitsP)
		classesP := mergeLeading(graph.BroadcastToDims(graph.ExpandAxes(classes, 0), per, g, k))
		w := graph.ConvertDType(keep, x.DType())
		sum := func(v *graph.Node) *graph.Node { // Σ_s w_s v_s [G,...] of v [per·G,...]
			d := v.Shape().Dimensions
			wShape := make([]int, len(d)+1)
			for i := range wShape {
				wShape[i] = 1
			}
			wShape[0] = per
			v = graph.Reshape(v, append([]int{per, g}, d[1:]...)...)
			return graph.ReduceSum(graph.Mul(v, graph.Reshape(w, wShape...)), 0)
		}
		outs := []*graph.Node{logits, classes}
		if !onLayers {
			grads := inputGradients(pm.(inputMethod), m.Name(), xs, logitsP, func(l *graph.Node) *graph.Node { return t.rescore(l, classesP) })
			sums := make([]*graph.Node, len(grads))
			for ti, gr := range grads {
				sums[ti] = sum(gr)
			}
			return append(outs, graph.Stack(sums, 1))
		}
		grads := c.layerGradients(pm, logitsP, actsP, t.rescore(logitsP, classesP)) // [K][L]
		for li := range layers {
			perTarget := make([]*graph.Node, k)
			for ti := range perTarget {
				ps := powers(grads[ti][li], lm.moments())
				for mi, p := range ps {
					ps[mi] = sum(p)
				}
				perTarget[ti] = graph.Stack(ps, 1) // [G,M,C,h,w]
			}
			outs = append(outs, graph.Stack(perTarget, 1))
		}
		for li, a := range acts {
			outs = append(outs, c.grids[li].Map(a))
		}
		return outs
	}
}

// inputGradients returns, for each of the K targets, the gradient with
// respect to xs of the sum over images of the score that score computes
// from logits (the model's output on xs), [M,...xs's dims]. Guided methods
// backpropagate through guided ReLUs: score then gets the logits of a copy
// of the model's graph.
func inputGradients(im inputMethod, model string, xs, logits *graph.Node, score func(logits *graph.Node) *graph.Node) []*graph.Node {
	if im.guided() {
		entry := graph.Identity(xs)
		count := 0
		logits = rewire(logits, map[*graph.Node]*graph.Node{xs: entry}, func(orig, clone *graph.Node) *graph.Node {
			if isReLU(orig) {
				count++
				return graph.IdentityWithCustomGradient(clone, func(_, v *graph.Node) *graph.Node { return activation.Relu(v) })
			}
			return clone
		})
		if count == 0 {
			panic(fmt.Errorf("%s needs ReLUs, and model %s has none that convlens recognises", im.Name(), model))
		}
		xs = entry
	}
	scores := score(logits)
	grads := make([]*graph.Node, scores.Shape().Dimensions[1])
	for ti := range grads {
		grads[ti] = graph.Gradient(graph.ReduceAllSum(graph.SliceAxis(scores, 1, graph.AxisElem(ti))), xs)[0]
	}
	return grads
}

// inputMaps builds the maps [N,K,H,W] of an input method from the gradient
// at x, in the graph of the model's forward pass (logits, acts).
func (c *CAM) inputMaps(im inputMethod, x, logits *graph.Node, acts []*graph.Node, classes, scores *graph.Node, t Target) *graph.Node {
	gs := inputGradients(im, c.runner.Model().Name(), x, logits, func(l *graph.Node) *graph.Node {
		if l == logits {
			return scores
		}
		return t.rescore(l, classes)
	})
	var cam *graph.Node
	if im.needsLayers() {
		// The Grad-CAM map, normalised as always, whatever the options.
		plain := *c
		plain.relu, plain.normalize = true, true
		cam = plain.finish(c.layerMaps(GradCAM, logits, acts, scores))
	}
	return c.gradientMaps(im, x, gs, cam)
}

// gradientMaps builds the maps [N,K,H,W] of an input method from x and the
// gradient of each target's score gs[k] [N,...x's dims], both in the
// model's layout, multiplied by the target's map of cam [N,K,H,W] if not nil.
func (c *CAM) gradientMaps(im inputMethod, x *graph.Node, gs []*graph.Node, cam *graph.Node) *graph.Node {
	layout := c.runner.Model().Input().Layout
	n := x.Shape().Dimensions[0]
	xc := channelsFirst(x, layout)
	maps := make([]*graph.Node, len(gs))
	for ti, g := range gs {
		mp := im.Map(xc, channelsFirst(g, layout))
		if cam != nil {
			d := cam.Shape().Dimensions
			mp = graph.Mul(mp, graph.Reshape(graph.SliceAxis(cam, 1, graph.AxisElem(ti)), n, d[2], d[3]))
		}
		maps[ti] = mp
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
