package gradcam

import (
	"fmt"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Perturbation is a method that weighs a layer's channels by running the
// model again, once per channel and image: on the input masked by the
// channel (Score-CAM), or with the channel zeroed (Ablation-CAM). The map is
// Σ_k w_k A_k, as for [ChannelWeights].
//
// The CAM runs the passes in calls of the model of at most
// [Builder.PointsPerCall] copies, reports [Progress], and refuses batches
// that need more than [Builder.MaxPasses] passes ([CAM.Passes] says how many
// a batch needs). The maps then come from one more graph, normalised like
// the other methods'.
type Perturbation struct {
	// MethodName is returned by Name.
	MethodName string
	// Ablate zeroes channel k of the layer's activation in pass k (the rest
	// of the network is recomputed from there); otherwise pass k runs the
	// model on the input multiplied by channel k's mask (see [ScoreCAM]).
	Ablate bool
	// Weights returns the channel weights w [N,K,C] from the scores of the
	// unperturbed images, base [N,K], and of the passes, perturbed [N,K,C].
	Weights func(base, perturbed *graph.Node) *graph.Node
}

// Name returns the method's name.
func (p Perturbation) Name() string { return p.MethodName }

// Map weights the activation's channels by w [N,C], the weights the passes
// produced (the CAM passes them where gradient methods get the gradient).
func (p Perturbation) Map(a, w *graph.Node) *graph.Node {
	return graph.Einsum("nc,nchw->nhw", w, a)
}

func (p Perturbation) terms(a, w *graph.Node) *graph.Node { return weighted(w, a) }

var (
	// ScoreCAM (Wang et al., 2020): each channel A_k, upsampled to the input
	// size (bilinear, align_corners=True, as pytorch-grad-cam's
	// UpsamplingBilinear2d) and min-max normalised per image,
	// M_k = (U_k − min U_k) / (max U_k − min U_k + 1e-8), masks the
	// (preprocessed) input: s_k = score(x ⊙ M_k); w = softmax_k(s);
	// map = Σ_k w_k A_k. One pass per channel and image.
	ScoreCAM Method = Perturbation{
		MethodName: "scorecam",
		Weights:    func(_, perturbed *graph.Node) *graph.Node { return graph.Softmax(perturbed, 2) },
	}

	// AblationCAM (Desai and Ramaswamy, 2020): w_k = (y − y_k) / y, where y is
	// the score and y_k the score with channel k of the layer set to zero;
	// map = Σ_k w_k A_k. pytorch-grad-cam ablates with a large negative value
	// when the layer has negative values; convlens always uses zero, which is
	// the same for the usual post-ReLU layers. One pass per channel and image.
	AblationCAM Method = Perturbation{
		MethodName: "ablationcam",
		Ablate:     true,
		Weights: func(base, perturbed *graph.Node) *graph.Node {
			y := graph.ExpandAxes(base, 2)
			return graph.Div(graph.Sub(y, perturbed), y)
		},
	}
)

// explainPerturbation runs a perturbation method: a base pass for the
// logits, the classes and the layers' activations, the perturbed passes
// layer by layer in calls of at most [Builder.PointsPerCall] copies (see
// pointPlan), then the maps.
func (c *CAM) explainPerturbation(p Perturbation, x *tensors.Tensor, t Target, given *tensors.Tensor) (*Result, error) {
	n := x.Shape().Dimensions[0]
	total := c.Passes(n)
	if err := c.checkPasses(p.Name(), n, fmt.Sprintf("at %s (one per channel and image)", c.describeChannels()), "pick a layer with fewer channels"); err != nil {
		return nil, err
	}

	// The unperturbed images: logits, classes, activations read as maps.
	m := c.runner.Model()
	args := []any{x}
	if given != nil {
		args = append(args, given)
	}
	base, err := c.exec(c.key("perturb-base", t), func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		logits, acts := m.Forward(scope, inputs[0], c.layers)
		checkLogits(logits)
		var given *graph.Node
		if len(inputs) > 1 {
			given = inputs[1]
		}
		classes, _ := t.scores(logits, given)
		outs := []*graph.Node{logits, classes}
		for li, a := range acts {
			outs = append(outs, c.grids[li].Map(a))
		}
		return outs
	}, args...)
	if err != nil {
		return nil, err
	}
	defer finalizeAll(base)
	logits, classes, acts := base[0], base[1], base[2:]
	k := classes.Shape().Dimensions[1]

	// The perturbed passes, layer by layer.
	done := 0
	final := []any{logits, classes}
	for li, g := range c.grids {
		ch, name := g.Channels, c.layers[li]
		pl := c.plan(n, ch)
		perturbed := make([]float32, n*k*ch)
		fn, key := c.chunkGraph(p, t, li, pl.per), c.key("perturb-chunk", t, name, fmt.Sprint(pl.per))
		batch := []*tensors.Tensor{x, classes}
		if !p.Ablate {
			batch = append(batch, acts[li])
		}
		err := pl.run(batch, func(s, _, first int, group []*tensors.Tensor) error {
			args := []any{group[0], group[1], int32(s)}
			if !p.Ablate {
				args = append(args, group[2])
			}
			outs, err := c.exec(key, fn, args...)
			if err != nil {
				return err
			}
			defer finalizeAll(outs)
			return tensors.ConstFlatData(outs[0], func(scores []float32) { // [G,per,K]
				for img := range group[0].Shape().Dimensions[0] {
					for j := range pl.per {
						for tk := range k {
							perturbed[((first+img)*k+tk)*ch+s+j] = scores[(img*pl.per+j)*k+tk]
						}
					}
				}
			})
		}, func(d int) {
			if c.progress != nil {
				c.progress(Progress{Method: p.Name(), Layer: name, Done: done + d, Total: total})
			}
		})
		if err != nil {
			return nil, err
		}
		done += n * ch
		final = append(final, tensors.FromFlatDataAndDimensions(perturbed, n, k, ch))
	}
	for _, a := range acts {
		final = append(final, a)
	}

	// The maps from the weights.
	outs, err := c.exec(c.key("perturb-maps", t), c.mapsGraph(t, func(scores *graph.Node, inputs []*graph.Node) []*graph.Node {
		layers := len(inputs) / 2
		raws := make([]*graph.Node, layers)
		for li := range raws {
			w, a := p.Weights(scores, inputs[li]), inputs[layers+li] // [N,K,C], [N,C,h,w]
			d := w.Shape().Dimensions
			perTarget := make([]*graph.Node, d[1])
			for ti := range perTarget {
				perTarget[ti] = c.layerMap(p, a, graph.Reshape(graph.SliceAxis(w, 1, graph.AxisElem(ti)), d[0], d[2]))
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

// describeChannels names the layers and their channel counts, for messages.
func (c *CAM) describeChannels() string {
	s := ""
	for i, g := range c.grids {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q (%d channels)", c.layers[i], g.Channels)
	}
	return s
}

// chunkGraph returns the graph of one call of the model at layer li:
// inputs a group of G images x, their classes [G,K] (int32), the first
// channel (int32 scalar) and, for Score-CAM, the layer's activation read as
// maps [G,C,h,w] (from the base pass, so that no call runs the unperturbed
// model again); output the scores of the b perturbed copies of each image,
// [G,B,K].
func (c *CAM) chunkGraph(p Perturbation, t Target, li, b int) func(*model.Scope, []*graph.Node) []*graph.Node {
	m := c.runner.Model()
	in := m.Input()
	layer, grid := c.layers[li], c.grids[li]
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		x, classes, start := inputs[0], inputs[1], inputs[2]
		g := x.Graph()
		n := x.Shape().Dimensions[0]
		k := classes.Shape().Dimensions[1]
		var logits *graph.Node
		if !p.Ablate {
			a := inputs[3] // [N,C,h,w]
			// Channels start..start+b−1, picked with a one-hot matrix (the
			// pure-Go backend has no DynamicSlice).
			ch := a.Shape().Dimensions[1]
			idx := graph.Add(graph.Iota(g, shapes.Make(dtypes.Int32, b), 0), start)
			ab := graph.Einsum("bc,nchw->nbhw", graph.OneHot(idx, ch, a.DType()), a)
			up := resizeAlignCorners(ab, in.Height, in.Width)
			lo := graph.ReduceAndKeep(up, graph.ReduceMin, 2, 3)
			hi := graph.ReduceAndKeep(up, graph.ReduceMax, 2, 3)
			masks := graph.Div(graph.Sub(up, lo), graph.AddScalar(graph.Sub(hi, lo), 1e-8)) // [N,B,H,W]
			xc := channelsFirst(x, in.Layout)                                               // [N,Cin,H,W]
			xm := graph.Mul(graph.ExpandAxes(xc, 1), graph.ExpandAxes(masks, 2))            // [N,B,Cin,H,W]
			xm = mergeLeading(xm)
			if in.Layout == models.NHWC {
				xm = graph.TransposeAllAxes(xm, 0, 2, 3, 1)
			}
			logits, _ = m.Forward(scope, graph.StopGradient(xm), nil)
		} else {
			dims := x.Shape().Dimensions
			xr := mergeLeading(graph.BroadcastToDims(graph.ExpandAxes(x, 1), append([]int{n, b}, dims[1:]...)...))
			base, acts := m.Forward(scope, xr, []string{layer})
			a := acts[0]
			ch := grid.Channels
			idx := graph.Add(graph.Iota(g, shapes.Make(dtypes.Int32, b), 0), start)         // [B]
			keep := graph.OneMinus(graph.OneHot(idx, ch, a.DType()))                        // [B,C]
			keep = mergeLeading(graph.BroadcastToDims(graph.ExpandAxes(keep, 0), n, b, ch)) // [N·B,C]
			keep = graph.Reshape(keep, grid.ChannelShape(n*b)...)
			logits = rewire(base, map[*graph.Node]*graph.Node{a: graph.Mul(a, keep)}, nil)
			if logits == base {
				panic(fmt.Errorf("the logits do not depend on layer %q, so ablating its channels changes nothing; pick a layer the output is computed from", layer))
			}
		}
		checkLogits(logits)
		classesRep := mergeLeading(graph.BroadcastToDims(graph.ExpandAxes(classes, 1), n, b, k))
		scores := t.rescore(logits, classesRep) // [N·B,K]
		return []*graph.Node{graph.Reshape(scores, n, b, k)}
	}
}

// resizeAlignCorners resamples maps [N,K,h,w] to [N,K,H,W] bilinearly with
// aligned corners (PyTorch align_corners=True): output i samples the source
// at i·(h−1)/(H−1).
func resizeAlignCorners(x *graph.Node, height, width int) *graph.Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	h, w := dims[2], dims[3]
	mh := graph.Const(g, tensors.FromFlatDataAndDimensions(alignCornersMatrix(h, height), height, h))
	mw := graph.Const(g, tensors.FromFlatDataAndDimensions(alignCornersMatrix(w, width), width, w))
	mh, mw = graph.ConvertDType(mh, x.DType()), graph.ConvertDType(mw, x.DType())
	x = graph.Einsum("ah,nkhw->nkaw", mh, x)
	return graph.Einsum("nkaw,bw->nkab", x, mw)
}

// alignCornersMatrix is the dst×src interpolation matrix, row-major, of
// bilinear resampling with aligned corners.
func alignCornersMatrix(src, dst int) []float32 {
	m := make([]float32, dst*src)
	for i := range dst {
		pos := 0.0
		if dst > 1 {
			pos = float64(i) * float64(src-1) / float64(dst-1)
		}
		i0 := min(int(pos), src-1)
		i1 := min(i0+1, src-1)
		f := float32(pos - float64(i0))
		m[i*src+i0] += 1 - f
		m[i*src+i1] += f
	}
	return m
}
