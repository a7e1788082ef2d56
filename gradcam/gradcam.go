// Package gradcam computes class activation maps: which regions of an image
// drove a model's score for a class.
//
// Everything is computed inside one GoMLX graph per model, layers, method,
// target kind and batch shape, compiled once and reused: the forward pass, the
// target score, the gradient of the score with respect to each layer's
// activation (and nothing else: no weight gradients), the method's map, and
// the normalisation.
//
// The short path, from an ONNX file and an image to a saved overlay (the
// layer defaults to the last one with spatial axes, the class to the
// predicted one):
//
//	b, err := backend.Default()               // or backend.New("go")
//	m, err := models.LoadONNX("model.onnx")
//	img, err := models.LoadImage("cat.png")
//	res, err := gradcam.New(models.NewRunner(b, m)).ExplainImages(gradcam.Top(1), img)
//	heat, err := res.Map(0, 0) // image 0, best class: values in [0,1] at input size
//	err = display.Overlay(img, heat).Save("cam.png")
//
// The long path names layers and options and keeps the CAM for many batches:
//
//	cam, err := gradcam.New(runner, "layer4").Method(gradcam.HiResCAM).Done() // a module path or a node output
//	res, err := cam.Explain(batch, gradcam.Top(1))
//	heat, err := res.Map(1, 0) // image 1, best class
//
// # Grad-CAM
//
// With A the layer activation [C,h,w] for one image and g = ∂score/∂A, the
// channel weights are the spatial means w_k = mean_ij g_kij and the raw map is
// Σ_k w_k A_k, signed. [Result.Raw] holds it; its ReLU is the usual Grad-CAM
// map at layer resolution.
//
// # Normalisation (as pytorch-grad-cam, so results compare with it)
//
// Per image and target: ReLU; min-max, (x − min) / (max − min + 1e-7);
// bilinear resize to the input size with half-pixel centres (OpenCV
// INTER_LINEAR, PyTorch align_corners=False, no antialiasing); then, over the
// layers, the mean of these resized maps, ReLU, and min-max again. For one
// layer the second min-max still runs, as pytorch-grad-cam's does.
//
// # Methods
//
// [Methods] lists every method by its command-line name; [MethodByName]
// looks one up. Each one's formula is in its doc comment:
//
//   - the CAM family, one forward and one backward pass: [GradCAM],
//     [HiResCAM], [GradCAMElementwise], [GradCAMPlusPlus], [XGradCAM],
//     [LayerCAM], [EigenCAM], [EigenGradCAM];
//   - [Perturbation] methods, one extra forward pass per channel and image,
//     batched: [ScoreCAM], [AblationCAM];
//   - Score-CAM's variants, [Perturbation] methods too: [SSCAM] and [ISCAM],
//     several passes per channel, and [FasterScoreCAM], passes for each
//     image's channels of highest variance only;
//   - input attributions, gradients with respect to the input: [Saliency],
//     [SmoothGrad], [IntegratedGradients], [GuidedBackprop], and
//     [GuidedGradCAM], which also needs layers;
//   - [SmoothGradCAMPlusPlus], Grad-CAM++ of the gradient's powers averaged
//     over noisy copies of the image, one forward and backward pass per copy;
//   - [KPCACAM], EigenCAM with kernel PCA (a sigmoid kernel by default), no gradient;
//   - [FinerCAM], Grad-CAM of the class against its nearest classes, and
//     [FullGrad], the input gradient plus every bias's gradient term;
//   - model-agnostic perturbation maps at the input, no layer: [Occlusion]
//     (sliding windows) and [RISE] (random masks), one pass per mask.
//
// [Builder.ReLU] and [Builder.Normalize] switch the ReLU and the rescaling
// below off for any method, for raw signed maps. [Builder.EigenSmooth]
// makes a CAM-family map the first principal component of its per-channel
// terms, and [Builder.AugSmooth] averages any method's maps over the image
// and its mirror, each with its intensities ×0.9, ×1 and ×1.1, both as
// pytorch-grad-cam's options.
//
// # Targets
//
// [Top] explains the K best classes in one pass (K gradients, one forward
// pass); [Class] explains given classes, one for all images or one per image;
// [Score] explains any scalar function of the logits (a softmax probability, a
// sum of classes). Beyond softmax classifiers:
//
//   - a sigmoid binary classifier (one output z) has two decisions, class 1
//     with score z and class 0 with score −z, and Top(1) explains the one
//     the model made (see [Target]);
//   - [Output] explains an output itself: a regression's value;
//   - [Similarity] explains the cosine similarity of an embedding model's
//     output to a reference embedding;
//   - [Segment] explains a segmentation model's class summed over a region;
//   - [Counterfactual] turns any target into the evidence against it.
package gradcam

import (
	"errors"
	"fmt"
	"image"
	"strings"

	"github.com/convlens/convlens/internal/fastconv"
	"github.com/convlens/convlens/internal/parallel"
	"github.com/convlens/convlens/internal/resample"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// Defaults of the options of [Builder].
const (
	// DefaultPointsPerCall is how many points (forward passes of one image)
	// one call of the model evaluates for the methods that run it many times
	// per image; see [Builder.PointsPerCall]. On the pure-Go backend one
	// point per call keeps Integrated Gradients (32 steps) on ResNet-18 at
	// batch 1 to a peak RSS of about 0.7 GB, where 2 points take 1.0 GB, 4
	// take 1.6 GB and all 32 in one call 4.2 GB (go run ./bench -table=false
	// -extras=false), for about 10% more CPU time than one call.
	DefaultPointsPerCall = 1
	// DefaultBatchSize is DefaultPointsPerCall, by its former name.
	//
	// Deprecated: use DefaultPointsPerCall.
	DefaultBatchSize = DefaultPointsPerCall
	// DefaultMaxPasses bounds the forward passes (one image each) a
	// perturbation method may run for one batch; see [Builder.MaxPasses].
	DefaultMaxPasses = 20000
)

// Builder builds a [CAM]; create it with [New].
type Builder struct {
	runner               *models.Runner
	layers               []string
	method               Method
	relu, normalize      bool
	eigenSmooth          bool
	augSmooth            bool
	maxPoints, maxPasses int
	pointsName           string // the option that set points, for messages
	progress             func(Progress)
	grid                 string
}

// New starts configuring a CAM over the given layers of the runner's model.
// With several layers the maps are averaged (see the package doc); with none,
// the CAM is computed at [models.LastSpatialLayer], which [CAM.Layers]
// reports. A Builder explains images itself ([Builder.ExplainImages]); [Builder.Done]
// returns the validated CAM, to keep and reuse.
func New(r *models.Runner, layers ...string) *Builder {
	return &Builder{runner: r, layers: layers, method: GradCAM, relu: true, normalize: true,
		maxPoints: DefaultPointsPerCall, maxPasses: DefaultMaxPasses}
}

// Method sets how the map is computed from activations and gradients (default [GradCAM]).
func (c *Builder) Method(m Method) *Builder {
	c.method = m
	return c
}

// ReLU sets whether the ReLU of the normalisation runs (default true). With
// ReLU off the maps keep their sign: negative evidence stays negative, and
// normalisation divides by the largest magnitude instead of min-max scaling,
// so [Result.Normalized] lies in [−1, 1] with 0 meaning "no evidence".
func (c *Builder) ReLU(on bool) *Builder {
	c.relu = on
	return c
}

// Normalize sets whether maps are rescaled (default true). Without it
// [Result.Normalized] holds the maps resized to the input size (and averaged
// over layers) at their raw scale, after the ReLU unless [Builder.ReLU] is off.
func (c *Builder) Normalize(on bool) *Builder {
	c.normalize = on
	return c
}

// EigenSmooth sets whether the map of a CAM-family method is the first
// principal component of its per-channel terms instead of their sum
// (default false), as pytorch-grad-cam's eigen_smooth: [FirstComponent]
// (with its sign convention) of w_k A_k for the channel-weight methods
// ([GradCAM], [GradCAMPlusPlus], [XGradCAM], [FinerCAM],
// [SmoothGradCAMPlusPlus]) and the [Perturbation] methods, of the
// per-element term T_k for the [Elementwise] ones ([HiResCAM], [LayerCAM],
// [GradCAMElementwise]). It removes the noise of the terms' less
// principal directions. The methods with no such terms (input
// attributions, [Occlusion], [RISE], [FullGrad], and the [Projection]
// methods and [KPCACAM], which are projections already) make [Builder.Done]
// fail.
func (c *Builder) EigenSmooth(on bool) *Builder {
	c.eigenSmooth = on
	return c
}

// AugSmooth sets whether maps are averaged over augmented copies of each
// image (default false), as pytorch-grad-cam's aug_smooth (ttach's
// HorizontalFlip × Multiply(0.9, 1, 1.1)): the image mirrored or not,
// times 0.9, 1 and 1.1 (in the model's input space), six copies explained
// with the same method and options; each copy's maps are mirrored back —
// [Result.Normalized] at input size, [Result.Raw] at the layer's
// resolution — and [Result.Normalized] and [Result.Raw] are the means over
// the copies (the normalised maps are not rescaled after averaging, as in
// pytorch-grad-cam). Unlike pytorch-grad-cam, which picks the class on each
// copy, the classes explained are chosen on the image itself and kept for
// every copy, so that [Top](1) explains the same class in all six; Scores
// and Logits are the image's own. It works with every method, at six times
// the cost ([CAM.Passes]).
func (c *Builder) AugSmooth(on bool) *Builder {
	c.augSmooth = on
	return c
}

// PointsPerCall sets how many points one call of the model evaluates, at
// most, for the methods that run the model many times per image (default
// [DefaultPointsPerCall]; n < 1 is an error). A point is one forward pass
// of one image: a perturbed copy for [ScoreCAM] and [AblationCAM] (one per
// channel), a step of [IntegratedGradients], a noisy copy for
// [SmoothGrad] and [SmoothGradCAMPlusPlus]; with its backward pass for the
// last three.
//
// Memory grows with n, not with the points per image or the batch: each
// call takes the next min(n, P) points (P per image) of each image of a
// group of max(1, n / min(n, P)) images. The results do not depend on n, up
// to float32 rounding: the gradients are summed over the calls, the scores
// of the perturbed copies gathered. Larger n means fewer, larger calls,
// which small models and accelerators run faster: tinycnn's Integrated
// Gradients of 64 images takes half the CPU time at 16 as at 1 (and 0.2 GB);
// ResNet-18's, on the pure-Go backend, about 20% less at 2 and 30% less at
// 4, for 0.3 GB more peak RSS per point. A model whose file fixes the batch
// gets one point of each of its images per call, whatever n. The other
// methods evaluate one point per image, the image itself, and run a batch
// in one call.
func (c *Builder) PointsPerCall(n int) *Builder {
	c.maxPoints, c.pointsName = n, ""
	return c
}

// BatchSize is [Builder.PointsPerCall], by its former name (it counted the
// copies of each image a perturbation method ran per call; the copies of all
// the images in a call now count together).
//
// Deprecated: use PointsPerCall.
func (c *Builder) BatchSize(n int) *Builder {
	c.maxPoints, c.pointsName = n, "batch size"
	return c
}

// MaxPasses bounds the cost of the methods that run the model many times
// per image (the perturbation, mask and point methods, and [Builder.AugSmooth]):
// [CAM.Explain] fails, before running anything, when a batch would need more
// than n forward passes of one image ([CAM.Passes]; default
// [DefaultMaxPasses]; 0 or less: no bound).
func (c *Builder) MaxPasses(n int) *Builder {
	c.maxPasses = n
	return c
}

// Grid says how the layers' activations read as maps, in [models.ParseGrid]'s
// words ("nhwc", "tokens:14x14+1"), for layers whose shape does not say it
// (see [models.Layer.Grid]; a non-square token grid, say). Default: read
// from each layer's shape.
func (c *Builder) Grid(spec string) *Builder {
	c.grid = spec
	return c
}

// Progress sets a function that perturbation methods call as they go, for
// progress bars: after each chunk of channels, once every image has been
// through it. It is called from the goroutine that runs Explain.
func (c *Builder) Progress(fn func(Progress)) *Builder {
	c.progress = fn
	return c
}

// Progress reports how far a perturbation method has got.
type Progress struct {
	// Method and Layer being computed.
	Method, Layer string
	// Done and Total count forward passes of one image, over all layers.
	Done, Total int
}

// Done validates the layers and returns the CAM.
func (c *Builder) Done() (*CAM, error) {
	if err := c.runner.Err(); err != nil {
		return nil, fmt.Errorf("gradcam.New: %w", err)
	}
	m := c.runner.Model()
	if err := models.CheckClasses(m); err != nil {
		return nil, err
	}
	if c.method == nil {
		return nil, fmt.Errorf("no method given; known methods: %s", strings.Join(MethodNames(), ", "))
	}
	if c.maxPoints < 1 {
		name := c.pointsName
		if name == "" {
			name = "points per call"
		}
		return nil, fmt.Errorf("%s %d: it must be at least 1", name, c.maxPoints)
	}
	if pm, ok := c.method.(perturbationMethod); ok {
		if _, err := pm.perturbation(); err != nil {
			return nil, err
		}
	}
	if v, ok := c.method.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	if _, ok := c.method.(termsMethod); c.eigenSmooth && !ok {
		return nil, fmt.Errorf("EigenSmooth projects the per-channel terms of a CAM-family method (channel weights w_k·A_k, element-wise terms, perturbation weights), and %s has none: "+
			"it is an input attribution, a mask method, FullGrad or a projection already; turn EigenSmooth off or pick such a method", c.method.Name())
	}
	im, isInput := c.method.(inputMethod)
	cam := &CAM{runner: c.runner, method: c.method, relu: c.relu, normalize: c.normalize,
		eigenSmooth: c.eigenSmooth, augSmooth: c.augSmooth,
		maxPoints: c.maxPoints, maxPasses: c.maxPasses, progress: c.progress}
	if _, isMask := c.method.(maskMethod); isMask || isInput && !im.needsLayers() {
		// Input attributions ignore layers: the map is at the input.
		return cam, nil
	}
	names := c.layers
	if len(names) == 0 {
		l, err := models.LastSpatialLayer(m)
		if err != nil {
			return nil, fmt.Errorf("no layer given, and %w", err)
		}
		names = []string{l.Name}
	}
	for _, name := range names {
		// A module path ("layer4") becomes the node output it names.
		l, err := models.FindLayer(m, name)
		if err != nil {
			return nil, err
		}
		var g models.Grid
		if c.grid != "" {
			if g, err = models.ParseGrid(c.grid, l.Shape.Dimensions); err != nil {
				return nil, fmt.Errorf("layer %q: %w", l.Name, err)
			}
		} else if l, err = models.SpatialLayer(m, name); err != nil {
			return nil, err
		} else {
			g, _ = l.Grid(m.Input().Layout)
		}
		cam.layers = append(cam.layers, l.Name)
		cam.grids = append(cam.grids, g)
		if !l.Shape.DType.IsFloat() {
			return nil, fmt.Errorf("layer %q of model %s is %s, which cannot be differentiated or weighted: %s needs a floating-point activation",
				name, m.Name(), l.Shape.DType, c.method.Name())
		}
	}
	return cam, nil
}

// ExplainImages is [CAM.ExplainImages] of the CAM that [Builder.Done] returns.
func (c *Builder) ExplainImages(t Target, images ...image.Image) (*Result, error) {
	cam, err := c.Done()
	if err != nil {
		return nil, err
	}
	return cam.ExplainImages(t, images...)
}

// Explain is [CAM.Explain] of the CAM that [Builder.Done] returns.
func (c *Builder) Explain(x *tensors.Tensor, t Target) (*Result, error) {
	cam, err := c.Done()
	if err != nil {
		return nil, err
	}
	return cam.Explain(x, t)
}

// CAM computes class activation maps for one model, set of layers and method.
// It is safe for concurrent use.
type CAM struct {
	runner               *models.Runner
	method               Method
	layers               []string
	grids                []models.Grid // How each layer reads as maps.
	relu, normalize      bool
	eigenSmooth          bool
	augSmooth            bool
	maxPoints, maxPasses int
	progress             func(Progress)
}

// Layers returns the layers the maps are computed at (none for input attributions).
func (c *CAM) Layers() []string { return c.layers }

// Method returns the method in use.
func (c *CAM) Method() Method { return c.method }

// PointsPerCall returns how many points (forward passes of one image) the
// CAM evaluates per call of the model (see [Builder.PointsPerCall]).
func (c *CAM) PointsPerCall() int { return c.maxPoints }

// Passes returns how many forward passes of one image explaining a batch of
// n images costs beyond the first: the perturbed copies of a [Perturbation]
// method (n × the channels of every layer that get passes × the samples of
// each), the points of an input method
// (n × its samples), the masked copies of [Occlusion] and [RISE] (n × the
// masks), 0 for the gradient methods; with [Builder.AugSmooth] all of it
// six times over, the five augmented copies' first passes included.
func (c *CAM) Passes(n int) int {
	if c.augSmooth {
		one := *c
		one.augSmooth = false
		return len(augmentations)*(one.Passes(n)+n) - n
	}
	switch m := c.method.(type) {
	case perturbationMethod:
		p, _ := m.perturbation() // Done checked it
		total := 0
		for _, g := range c.grids {
			total += n * p.channels(g.Channels) * p.samples()
		}
		return total
	case pointMethod:
		return n * m.samples()
	case maskMethod:
		in := c.runner.Model().Input()
		return n * m.masks(in.Height, in.Width)
	}
	return 0
}

// ExplainImages preprocesses images for the model and explains them.
func (c *CAM) ExplainImages(t Target, images ...image.Image) (*Result, error) {
	x, err := c.runner.Model().Input().Tensor(images...)
	if err != nil {
		return nil, err
	}
	return c.Explain(x, t)
}

// Explain computes the maps of a preprocessed batch x (see [models.Input.Tensor]) for target t.
// On the pure-Go backend the methods that run the model once explain a batch
// of several images in parts, one per core, side by side.
func (c *CAM) Explain(x *tensors.Tensor, t Target) (*Result, error) {
	switch {
	case c == nil:
		return nil, errors.New("gradcam.CAM.Explain: the CAM is nil: make one with gradcam.New(runner).Done(), and check its error")
	case x == nil:
		return nil, errors.New("gradcam.CAM.Explain: the batch x is nil: make one with the model's Input().Tensor")
	}
	m := c.runner.Model()
	if err := models.CheckBatch(m, x.Shape()); err != nil {
		return nil, err
	}
	if err := checkInput(x); err != nil {
		return nil, err
	}
	n := x.Shape().Dimensions[0]
	classes, err := t.classInput(n, c.outputShape())
	if err != nil {
		return nil, err
	}
	if b := m.Input().Batch; b > 0 && n > b {
		return c.explainParts(x, t, b, 1, c.Explain)
	}
	if c.augSmooth {
		return c.explainAugmented(x, t)
	}
	switch m := c.method.(type) {
	case perturbationMethod:
		p, err := m.perturbation()
		if err != nil {
			return nil, err
		}
		return c.explainPerturbation(p, x, t, classes)
	case pointMethod:
		return c.explainPoints(m, x, t, classes)
	case maskMethod:
		return c.explainMasks(m, x, t, classes)
	}
	if parts := fastconv.CallsAtOnce(c.runner.Backend(), n); parts > 1 {
		return c.explainParts(x, t, (n+parts-1)/parts, parts, c.explainOnce)
	}
	return c.explainOnce(x, t)
}

// explainOnce computes the maps of the methods that run the model once, in
// one call of its graph.
func (c *CAM) explainOnce(x *tensors.Tensor, t Target) (*Result, error) {
	m := c.runner.Model()
	classes, err := t.classInput(x.Shape().Dimensions[0], c.outputShape())
	if err != nil {
		return nil, err
	}
	args := []any{x}
	if classes != nil {
		args = append(args, classes)
	}
	e, err := c.runner.Exec(c.key("gradcam", t), c.graph(t))
	if err != nil {
		return nil, err
	}
	outs, err := e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("computing %s on %s: %w", c.method.Name(), m.Name(), err)
	}
	return c.result(outs)
}

// explainParts explains x in parts of size images with explain, atOnce of
// them at a time, and joins their results: each image's map depends on that
// image alone. It serves models whose file fixes the batch (parts of that
// batch, one at a time) and the parts that fastconv.CallsAtOnce runs side by side.
func (c *CAM) explainParts(x *tensors.Tensor, t Target, size, atOnce int,
	explain func(*tensors.Tensor, Target) (*Result, error)) (*Result, error) {
	chunks, err := models.SplitBatch(x, size)
	if err != nil {
		return nil, err
	}
	results := make([]*Result, len(chunks))
	errs := make([]error, len(chunks))
	parallel.ForN(len(chunks), atOnce, func(i int) {
		first := i * size
		results[i], errs[i] = explain(chunks[i], t.images(first, first+chunks[i].Shape().Dimensions[0]))
	})
	var all *Result
	for i, r := range results {
		if errs[i] != nil {
			return nil, inChunk(errs[i], i*size)
		}
		if all == nil {
			all = r
			continue
		}
		all.N += r.N
		all.Normalized = append(all.Normalized, r.Normalized...)
		all.Classes = append(all.Classes, r.Classes...)
		all.Scores = append(all.Scores, r.Scores...)
		all.Logits = append(all.Logits, r.Logits...)
		for l := range all.Raw {
			all.Raw[l].Values = append(all.Raw[l].Values, r.Raw[l].Values...)
		}
	}
	return all, nil
}

// key identifies a graph of this CAM for the runner's cache.
func (c *CAM) key(kind string, t Target, extra ...string) string {
	parts := append([]string{kind, c.method.Name(), fmt.Sprintf("%v", c.method),
		fmt.Sprintf("relu=%v,norm=%v,eigen=%v", c.relu, c.normalize, c.eigenSmooth), t.key()}, extra...)
	return strings.Join(append(parts, c.layers...), "\x00")
}

// outputShape is the model's output shape, from its last layer when that is
// the output; nil when unknown.
func (c *CAM) outputShape() []int {
	layers := c.runner.Model().Layers()
	if len(layers) == 0 {
		return nil
	}
	return layers[len(layers)-1].Shape.Dimensions
}

// logits is [Target.logits] of the model's output out.
func (c *CAM) logits(t Target, out *graph.Node) *graph.Node {
	return t.logits(out, c.runner.Model().Input().Layout)
}

// graph returns the graph function: inputs are x and, for class targets,
// the class indices [N,K]; outputs are logits, classes, scores, the
// normalised maps [N,K,H,W], then each layer's raw map [N,K,h,w] (one map at
// input size for input methods).
func (c *CAM) graph(t Target) func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		x := inputs[0]
		var given *graph.Node
		if t.needsClasses() {
			given = inputs[1]
		}
		logits, acts := c.runner.Model().Forward(scope, x, c.layers)
		logits = c.logits(t, logits)
		classes, scores := t.scores(logits, given)
		var raws []*graph.Node
		if _, ok := c.method.(FullGradMethod); ok {
			raws = []*graph.Node{c.fullGradMaps(x, logits, scores)}
		} else if im, ok := c.method.(inputMethod); ok {
			raws = []*graph.Node{c.inputMaps(im, x, logits, acts, classes, scores, t)}
		} else {
			gradScores := scores
			if sm, ok := c.method.(scoreMethod); ok {
				if t.fn != nil {
					panic(fmt.Errorf("%s compares classes: give it class targets (Class, Top), not the score %q", sm.Name(), t.name))
				}
				gradScores = sm.score(t.choices(logits), classes)
				if t.negate {
					gradScores = graph.Neg(gradScores)
				}
			}
			raws = c.layerMaps(c.method, logits, acts, gradScores)
		}
		return append([]*graph.Node{logits, classes, scores, c.finish(raws)}, raws...)
	}
}

// layerMaps builds each layer's raw maps [N,K,h,w] with a gradient method.
func (c *CAM) layerMaps(m Method, logits *graph.Node, acts []*graph.Node, scores *graph.Node) []*graph.Node {
	grads := c.layerGradients(m, logits, acts, scores)
	raws := make([]*graph.Node, len(acts))
	for li, a := range acts {
		perTarget := make([]*graph.Node, len(grads))
		for ti := range grads {
			perTarget[ti] = c.layerMap(m, c.grids[li].Map(a), grads[ti][li])
		}
		raws[li] = graph.Stack(perTarget, 1) // [N,K,h,w]
	}
	return raws
}

// layerGradients returns, for each of the K targets and each layer, the
// gradient of the sum over images of the target's score (scores [N,K])
// with respect to the layer's activation, read as maps [N,C,h,w]; nil ones
// for a method that needs no gradient.
func (c *CAM) layerGradients(m Method, logits *graph.Node, acts []*graph.Node, scores *graph.Node) [][]*graph.Node {
	grads := make([][]*graph.Node, scores.Shape().Dimensions[1])
	if !needsGradient(m) {
		for ti := range grads {
			grads[ti] = make([]*graph.Node, len(acts))
		}
		return grads
	}
	for li, a := range acts {
		if !dependsOn(logits, a) {
			panic(fmt.Errorf("the logits do not depend on layer %q (it is not on the path from the input to the output), so its gradient is zero and %s cannot use it; pick a layer the output is computed from",
				c.layers[li], m.Name()))
		}
	}
	for ti := range grads {
		score := graph.ReduceAllSum(graph.SliceAxis(scores, 1, graph.AxisElem(ti)))
		grads[ti] = graph.Gradient(score, acts...)
		for li, g := range grads[ti] {
			grads[ti][li] = c.grids[li].Map(g)
		}
	}
	return grads
}

// layerMap is m's map [N,h,w] from a and g, [N,C,h,w]: m.Map, or with
// EigenSmooth the first principal component of m's terms.
func (c *CAM) layerMap(m Method, a, g *graph.Node) *graph.Node {
	if c.eigenSmooth {
		return c.reduceTerms(m.(termsMethod).terms(a, g))
	}
	return m.Map(a, g)
}

// reduceTerms turns a method's terms T [N,C,h,w] into its map [N,h,w]:
// their sum over channels, or with EigenSmooth their first principal component.
func (c *CAM) reduceTerms(t *graph.Node) *graph.Node {
	if c.eigenSmooth {
		return FirstComponent(t)
	}
	return graph.ReduceSum(t, 1)
}

// checkPasses refuses, before anything runs, a batch of n images that needs
// more than [Builder.MaxPasses] forward passes: what says what the passes
// are, hint how to need fewer.
func (c *CAM) checkPasses(name string, n int, what, hint string) error {
	if total := c.Passes(n); c.maxPasses > 0 && total > c.maxPasses {
		return fmt.Errorf("%s needs %d forward passes of one image for %d image(s) %s, more than the limit of %d; raise the limit, explain fewer images at once, or %s",
			name, total, n, what, c.maxPasses, hint)
	}
	return nil
}

// finish turns raw maps, one [N,K,h,w] per layer, into the maps [N,K,H,W] at
// input size: per layer ReLU, scaling and resizing, then the mean over
// layers, ReLU and scaling again (see the package doc and [Builder.ReLU],
// [Builder.Normalize]).
func (c *CAM) finish(raws []*graph.Node) *graph.Node {
	in := c.runner.Model().Input()
	var resized []*graph.Node
	for _, r := range raws {
		resized = append(resized, resize(c.scale(r), in.Height, in.Width))
	}
	return c.scale(graph.ReduceMean(graph.Stack(resized, 0), 0))
}

// scale applies the ReLU and normalisation options to maps [N,K,h,w].
func (c *CAM) scale(x *graph.Node) *graph.Node {
	if c.relu {
		x = activation.Relu(x)
	}
	switch {
	case !c.normalize:
		return x
	case c.relu:
		return minMax(x)
	default:
		return maxAbs(x)
	}
}

// maxAbs rescales each map of x [N,K,h,w] to [−1,1]: x / (max|x| + 1e-7), keeping zero and signs.
func maxAbs(x *graph.Node) *graph.Node {
	hi := graph.ReduceAndKeep(graph.Abs(x), graph.ReduceMax, 2, 3)
	return graph.Div(x, graph.AddScalar(hi, 1e-7))
}

// channelsFirst transposes a rank-4 NHWC activation to NCHW.
func channelsFirst(x *graph.Node, l models.Layout) *graph.Node {
	if l == models.NHWC {
		return graph.TransposeAllAxes(x, 0, 3, 1, 2)
	}
	return x
}

// minMax rescales each map of x [N,K,h,w] to [0,1]: (x − min) / (max − min + 1e-7).
func minMax(x *graph.Node) *graph.Node {
	lo := graph.ReduceAndKeep(x, graph.ReduceMin, 2, 3)
	x = graph.Sub(x, lo)
	hi := graph.ReduceAndKeep(x, graph.ReduceMax, 2, 3)
	return graph.Div(x, graph.AddScalar(hi, 1e-7))
}

// resize resamples maps [N,K,h,w] to [N,K,H,W] as two matrix products with
// the interpolation matrices of package resample.
func resize(x *graph.Node, height, width int) *graph.Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	h, w := dims[2], dims[3]
	if h == height && w == width {
		return x
	}
	mh := graph.Const(g, tensors.FromFlatDataAndDimensions(resample.Matrix(h, height), height, h))
	mw := graph.Const(g, tensors.FromFlatDataAndDimensions(resample.Matrix(w, width), width, w))
	mh, mw = graph.ConvertDType(mh, x.DType()), graph.ConvertDType(mw, x.DType())
	x = graph.Einsum("ah,nkhw->nkaw", mh, x)
	return graph.Einsum("nkaw,bw->nkab", x, mw)
}

// result copies the graph outputs into a Result and frees the tensors.
func (c *CAM) result(outs []*tensors.Tensor) (*Result, error) {
	defer func() {
		for _, t := range outs {
			t.FinalizeAll()
		}
	}()
	dims := outs[3].Shape().Dimensions
	r := &Result{
		Layers: c.layers, N: dims[0], K: dims[1], Height: dims[2], Width: dims[3],
		Normalized: tensors.MustCopyFlatData[float32](outs[3]),
	}
	logits := tensors.MustCopyFlatData[float32](outs[0])
	r.NumClasses = outs[0].Shape().Dimensions[1]
	r.Logits = logits
	cls := tensors.MustCopyFlatData[int32](outs[1])
	r.Classes = make([]int, len(cls))
	for i, v := range cls {
		r.Classes[i] = int(v)
	}
	r.Scores = tensors.MustCopyFlatData[float32](outs[2])
	for _, raw := range outs[4:] {
		d := raw.Shape().Dimensions
		r.Raw = append(r.Raw, LayerMaps{Height: d[2], Width: d[3], Values: tensors.MustCopyFlatData[float32](raw)})
	}
	if err := r.checkFinite(); err != nil {
		return nil, err
	}
	return r, nil
}
