// Package gradcam computes class activation maps: which regions of an image
// drove a model's score for a class.
//
// Everything is computed inside one GoMLX graph per model, layers, method,
// target kind and batch shape, compiled once and reused: the forward pass, the
// target score, the gradient of the score with respect to each layer's
// activation (and nothing else: no weight gradients), the method's map, and
// the normalisation.
//
// The short path:
//
//	cam, err := gradcam.New(runner, "/layer4/layer4.1/relu_1/Relu_output_0").Done()
//	res, err := cam.Explain(batch, gradcam.Top(1))
//	heat := res.Map(0, 0) // image 0, best class: values in [0,1] at input size
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
// # Targets
//
// [Top] explains the K best classes in one pass (K gradients, one forward
// pass); [Class] explains given classes, one for all images or one per image;
// [Score] explains any scalar function of the logits (a softmax probability, a
// sum of classes, a regression output).
package gradcam

import (
	"fmt"
	"image"
	"strings"

	"github.com/convlens/convlens/internal/resample"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// Config builds a [CAM]; create it with [New].
type Config struct {
	runner *models.Runner
	layers []string
	method Method
}

// New starts configuring a CAM over the given layers of the runner's model.
// With several layers the maps are averaged (see the package doc).
func New(r *models.Runner, layers ...string) *Config {
	return &Config{runner: r, layers: layers, method: GradCAM}
}

// Method sets how the map is computed from activations and gradients (default [GradCAM]).
func (c *Config) Method(m Method) *Config {
	c.method = m
	return c
}

// Done validates the layers and returns the CAM.
func (c *Config) Done() (*CAM, error) {
	m := c.runner.Model()
	if len(c.layers) == 0 {
		return nil, fmt.Errorf("no layer given: name at least one convolutional layer of %s (list them with `convlens layers`)", m.Name())
	}
	cam := &CAM{runner: c.runner, method: c.method, layers: c.layers}
	for _, name := range c.layers {
		l, err := models.SpatialLayer(m, name)
		if err != nil {
			return nil, err
		}
		cam.shapes = append(cam.shapes, l)
	}
	return cam, nil
}

// CAM computes class activation maps for one model, set of layers and method.
// It is safe for concurrent use.
type CAM struct {
	runner *models.Runner
	method Method
	layers []string
	shapes []models.Layer
}

// Layers returns the layers the maps are computed at.
func (c *CAM) Layers() []string { return c.layers }

// Method returns the method in use.
func (c *CAM) Method() Method { return c.method }

// ExplainImages preprocesses images for the model and explains them.
func (c *CAM) ExplainImages(t Target, images ...image.Image) (*Result, error) {
	x, err := c.runner.Model().Input().Tensor(images...)
	if err != nil {
		return nil, err
	}
	return c.Explain(x, t)
}

// Explain computes the maps of a preprocessed batch x (see [models.Input.Tensor]) for target t.
func (c *CAM) Explain(x *tensors.Tensor, t Target) (*Result, error) {
	m := c.runner.Model()
	if err := models.CheckBatch(m, x.Shape()); err != nil {
		return nil, err
	}
	n := x.Shape().Dimensions[0]
	classes, err := t.classInput(n, c.numClasses())
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("gradcam\x00%s\x00%s\x00%s", c.method.Name(), strings.Join(c.layers, "\x00"), t.key())
	e, err := c.runner.Exec(key, c.graph(t))
	if err != nil {
		return nil, err
	}
	args := []any{x}
	if classes != nil {
		args = append(args, classes)
	}
	outs, err := e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("computing %s on %s: %w", c.method.Name(), m.Name(), err)
	}
	return c.result(outs)
}

// numClasses is the logits' width, from the model's last layer when it is the output.
func (c *CAM) numClasses() int {
	layers := c.runner.Model().Layers()
	if len(layers) == 0 {
		return 0
	}
	s := layers[len(layers)-1].Shape
	if s.Rank() != 2 {
		return 0
	}
	return s.Dimensions[1]
}

// graph returns the graph function: inputs are x and, for class targets, the
// class indices [N,K]; outputs are logits, classes, scores, the normalised
// maps [N,K,H,W], then each layer's raw map [N,K,h,w].
func (c *CAM) graph(t Target) func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
	in := c.runner.Model().Input()
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		x := inputs[0]
		logits, acts := c.runner.Model().Forward(scope, x, c.layers)
		if logits.Rank() != 2 {
			panic(fmt.Errorf("the model's output has shape %v; Grad-CAM needs logits shaped [batch, classes]", logits.Shape().Dimensions))
		}
		var given *graph.Node
		if len(inputs) > 1 {
			given = inputs[1]
		}
		classes, scores := t.scores(logits, given)
		k := scores.Shape().Dimensions[1]

		raws := make([]*graph.Node, len(acts))
		perTarget := make([][]*graph.Node, len(acts))
		for ti := range k {
			score := graph.ReduceAllSum(graph.SliceAxis(scores, 1, graph.AxisElem(ti)))
			grads := graph.Gradient(score, acts...)
			for li, a := range acts {
				a, g := channelsFirst(a, in.Layout), channelsFirst(grads[li], in.Layout)
				perTarget[li] = append(perTarget[li], c.method.Map(a, g))
			}
		}
		var resized []*graph.Node
		for li := range acts {
			raws[li] = graph.Stack(perTarget[li], 1) // [N,K,h,w]
			resized = append(resized, resize(minMax(activation.Relu(raws[li])), in.Height, in.Width))
		}
		norm := minMax(activation.Relu(graph.ReduceMean(graph.Stack(resized, 0), 0)))
		return append([]*graph.Node{logits, classes, scores, norm}, raws...)
	}
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
	return r, nil
}
