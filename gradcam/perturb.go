package gradcam

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/convlens/convlens/internal/fastconv"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Perturbation is a method that weighs a layer's channels by running the
// model again, once per channel and image: on the input masked by the
// channel (Score-CAM), or with the channel zeroed (Ablation-CAM). The map is
// Σ_k w_k A_k, as for [ChannelWeights]. A masking method may also run
// several passes per channel, each on a transformed mask ([SSCAMMethod],
// [ISCAMMethod]), and keep only each image's channels of highest variance
// ([FasterScoreCAMMethod]).
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
	// unperturbed images, base [N,K], and of the passes, perturbed [N,K,C]
	// (each channel's mean score over its samples; C counts only the
	// channels TopChannels keeps).
	Weights func(base, perturbed *graph.Node) *graph.Node

	// Samples is the number S of passes per channel (0 means 1), for
	// masking methods: the channel's score is the mean of theirs.
	Samples int
	// Sample, if not nil, transforms the masks of the passes before they
	// multiply the input. It gets the masks M [G,B,H,W] of B passes of each
	// of G images, their sample numbers s [B] (0 to S−1, as floats) and,
	// when Noisy, standard normal noise ε [G,B,H,W] (nil otherwise).
	Sample func(masks, s, noise *graph.Node) *graph.Node
	// Noisy draws the ε that Sample gets from [NormalNoise](Seed), laid out
	// [S,N,C,H,W] for every layer (S samples, the N images of the batch,
	// the layer's C channels, the input's H×W pixels): pass s of channel k
	// of image n gets the stream's values from ((s·N + n)·C + k)·H·W on.
	Noisy bool
	// Seed is the noise's seed.
	Seed uint64
	// TopChannels, if above 0, runs the passes for only the TopChannels
	// channels of each image whose activation varies most over positions
	// (population variance; ties to the lower channel; every channel when
	// the layer has no more): the weights are computed over those channels
	// and the map sums them alone.
	TopChannels int
}

// Name returns the method's name.
func (p Perturbation) Name() string { return p.MethodName }

// Map weights the activation's channels by w [N,C], the weights the passes
// produced (the CAM passes them where gradient methods get the gradient).
func (p Perturbation) Map(a, w *graph.Node) *graph.Node {
	return graph.Einsum("nc,nchw->nhw", w, a)
}

// perturbationMethod is a method computed as a [Perturbation]: Perturbation
// itself, or a method with settings that makes one from them (its zero
// values meaning the defaults) or says why it cannot.
type perturbationMethod interface {
	Method
	perturbation() (Perturbation, error)
}

// perturbation checks p's settings.
func (p Perturbation) perturbation() (Perturbation, error) {
	switch {
	case p.Weights == nil:
		return p, fmt.Errorf("perturbation method %q has no Weights", p.MethodName)
	case p.Samples < 0:
		return p, fmt.Errorf("perturbation method %q: Samples=%d is negative", p.MethodName, p.Samples)
	case p.TopChannels < 0:
		return p, fmt.Errorf("perturbation method %q: TopChannels=%d is negative", p.MethodName, p.TopChannels)
	case p.Noisy && p.Sample == nil:
		return p, fmt.Errorf("perturbation method %q is Noisy but has no Sample to add the noise", p.MethodName)
	case p.Ablate && (p.Samples > 1 || p.Sample != nil):
		return p, fmt.Errorf("perturbation method %q ablates channels: it has no masks for Samples or Sample to transform", p.MethodName)
	}
	return p, nil
}

func (p Perturbation) samples() int { return max(p.Samples, 1) }

// channels is how many channels of a layer of ch channels get passes.
func (p Perturbation) channels(ch int) int {
	if p.TopChannels > 0 {
		return min(p.TopChannels, ch)
	}
	return ch
}

// cost says how many passes an image takes, for messages.
func (p Perturbation) cost() (passes, fewer string) {
	passes = "one per channel and image"
	if s := p.samples(); s > 1 {
		passes, fewer = fmt.Sprintf("%d per channel and image", s), ", fewer samples"
	}
	if p.TopChannels > 0 {
		passes += fmt.Sprintf(", for at most %d channels of each image", p.TopChannels)
		fewer += ", fewer channels"
	}
	return passes, fewer
}

// scoreWeights are Score-CAM's weights, w = softmax_k(s) of the passes' scores s.
func scoreWeights(_, perturbed *graph.Node) *graph.Node { return graph.Softmax(perturbed, 2) }

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
		Weights:    scoreWeights,
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
// logits, the classes and the layers' activations (and their channels'
// variances, for TopChannels), the perturbed passes layer by layer in calls
// of at most [Builder.PointsPerCall] copies (see pointPlan), then the maps.
// The passes of an image are its kept channels' samples, channel by
// channel: pass q is sample q mod S of the image's (q div S)-th kept channel.
func (c *CAM) explainPerturbation(p Perturbation, x *tensors.Tensor, t Target, given *tensors.Tensor) (*Result, error) {
	n := x.Shape().Dimensions[0]
	total := c.Passes(n)
	passes, fewer := p.cost()
	if err := c.checkPasses(p.Name(), n, fmt.Sprintf("at %s (%s)", c.describeChannels(), passes), "pick a layer with fewer channels"+fewer); err != nil {
		return nil, err
	}

	// The unperturbed images: logits, classes, activations read as maps,
	// and for TopChannels each channel's variance over positions [N,C].
	m := c.runner.Model()
	args := []any{x}
	if given != nil {
		args = append(args, given)
	}
	base, err := c.exec(c.key("perturb-base", t), func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		logits, acts := m.Forward(scope, inputs[0], c.layers)
		logits = c.logits(t, logits)
		var given *graph.Node
		if len(inputs) > 1 {
			given = inputs[1]
		}
		classes, _ := t.scores(logits, given)
		outs := []*graph.Node{logits, classes}
		var vars []*graph.Node
		for li, a := range acts {
			a = c.grids[li].Map(a)
			outs = append(outs, a)
			if p.TopChannels > 0 {
				d := graph.Sub(a, graph.ReduceAndKeep(a, graph.ReduceMean, 2, 3))
				vars = append(vars, graph.ConvertDType(graph.ReduceMean(graph.Square(d), 2, 3), dtypes.Float32))
			}
		}
		return append(outs, vars...)
	}, args...)
	if err != nil {
		return nil, err
	}
	defer finalizeAll(base)
	layers := len(c.layers)
	logits, classes, acts := base[0], base[1], base[2:2+layers]
	k := classes.Shape().Dimensions[1]

	// The perturbed passes, layer by layer.
	done := 0
	final := []any{logits, classes}
	var kept []any // the kept channels [N,C'] (int32) of the layers TopChannels restricts
	restricted := make([]bool, layers)
	s := p.samples()
	for li, g := range c.grids {
		ch, name := g.Channels, c.layers[li]
		var sel [][]int // each image's kept channels; nil: all of them
		if p.channels(ch) < ch {
			sel = topChannels(tensors.MustCopyFlatData[float32](base[2+layers+li]), n, ch, p.channels(ch))
			restricted[li] = true
			kept = append(kept, keptTensor(sel))
		}
		points := p.channels(ch) * s
		pl := c.plan(n, points)
		pl.atOnce = fastconv.CallsAtOnce(c.runner.Backend(), points)
		perturbed := make([]float32, n*k*points)
		fn, key := c.chunkGraph(p, t, li, pl.per), c.key("perturb-chunk", t, name, fmt.Sprint(pl.per))
		batch := []*tensors.Tensor{x, classes}
		if !p.Ablate {
			batch = append(batch, acts[li])
		}
		err := pl.run(batch, func(first, skip, img int, group []*tensors.Tensor) error {
			size := group[0].Shape().Dimensions[0]
			args := []any{group[0], group[1], p.passChannels(sel, first, pl.per, img, size)}
			if !p.Ablate {
				args = append(args, group[2])
			}
			args = append(args, p.sampleInputs(sel, ch, first, pl.per, img, size, n, m.Input())...)
			outs, err := c.exec(key, fn, args...)
			if err != nil {
				return err
			}
			defer finalizeAll(outs)
			return tensors.ConstFlatData(outs[0], func(scores []float32) { // [G,per,K]
				for gi := range size {
					for j := skip; j < pl.per; j++ { // points before skip: another call's
						for tk := range k {
							perturbed[((img+gi)*k+tk)*points+first+j] = scores[(gi*pl.per+j)*k+tk]
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
		done += n * points
		final = append(final, tensors.FromFlatDataAndDimensions(perturbed, n, k, points/s, s))
	}
	for _, a := range acts {
		final = append(final, a)
	}
	final = append(final, kept...)

	// The maps from the weights: each channel's score is the mean over its
	// samples; a restricted layer's map sums its kept channels only.
	outs, err := c.exec(c.key("perturb-maps", t), c.mapsGraph(t, func(scores *graph.Node, inputs []*graph.Node) []*graph.Node {
		raws := make([]*graph.Node, layers)
		next := 2 * layers
		for li := range raws {
			w, a := p.Weights(scores, graph.ReduceMean(inputs[li], 3)), inputs[layers+li] // [N,K,C'], [N,C,h,w]
			if restricted[li] {
				a = graph.Einsum("njc,nchw->njhw", graph.OneHot(inputs[next], a.Shape().Dimensions[1], a.DType()), a)
				next++
			}
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

// topChannels returns, for each of n images, the keep channels of highest
// variance v [n,ch] (row-major; ties to the lower channel), in ascending order.
func topChannels(v []float32, n, ch, keep int) [][]int {
	sel := make([][]int, n)
	for img := range sel {
		order := make([]int, ch)
		for i := range order {
			order[i] = i
		}
		row := v[img*ch : (img+1)*ch]
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(row[b], row[a]) })
		sel[img] = slices.Sorted(slices.Values(order[:keep]))
	}
	return sel
}

// keptTensor is sel as an int32 tensor [N,C'].
func keptTensor(sel [][]int) *tensors.Tensor {
	flat := make([]int32, 0, len(sel)*len(sel[0]))
	for _, row := range sel {
		for _, k := range row {
			flat = append(flat, int32(k))
		}
	}
	return tensors.FromFlatDataAndDimensions(flat, len(sel), len(sel[0]))
}

// passChannel is the channel of pass q of image img: sel's (q div S)-th
// channel of the image, or channel q div S when sel is nil.
func (p Perturbation) passChannel(sel [][]int, img, q int) int {
	if sel == nil {
		return q / p.samples()
	}
	return sel[img][q/p.samples()]
}

// passChannels is the channel of passes first..first+per−1 of images
// img..img+g−1, [g,per] (int32).
func (p Perturbation) passChannels(sel [][]int, first, per, img, g int) *tensors.Tensor {
	idx := make([]int32, g*per)
	for gi := range g {
		for j := range per {
			idx[gi*per+j] = int32(p.passChannel(sel, img+gi, first+j))
		}
	}
	return tensors.FromFlatDataAndDimensions(idx, g, per)
}

// sampleInputs returns what Sample gets for passes first..first+per−1 of
// images img..img+g−1 of a batch of n, at a layer of ch channels: their
// sample numbers [per] and, when Noisy, their noise [g,per,H,W]; nothing
// without Sample.
func (p Perturbation) sampleInputs(sel [][]int, ch, first, per, img, g, n int, in models.Input) []any {
	if p.Sample == nil {
		return nil
	}
	s := p.samples()
	nums := make([]float32, per)
	for j := range nums {
		nums[j] = float32((first + j) % s)
	}
	out := []any{tensors.FromFlatDataAndDimensions(nums, per)}
	if p.Noisy {
		size := in.Height * in.Width
		noise := make([]float32, g*per*size)
		for gi := range g {
			for j := range per {
				q := first + j
				at := ((q%s*n+img+gi)*ch + p.passChannel(sel, img+gi, q)) * size
				normalNoiseAt(noise[(gi*per+j)*size:(gi*per+j+1)*size], p.Seed, at)
			}
		}
		out = append(out, tensors.FromFlatDataAndDimensions(noise, g, per, in.Height, in.Width))
	}
	return out
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
// inputs a group of G images x, their classes [G,K] (int32), the channel of
// each of their b passes [G,b] (int32), for the masking methods the layer's
// activation read as maps [G,C,h,w] (from the base pass, so that no call
// runs the unperturbed model again) and what Sample gets (see
// sampleInputs); output the scores of the b perturbed copies of each image,
// [G,b,K].
func (c *CAM) chunkGraph(p Perturbation, t Target, li, b int) func(*model.Scope, []*graph.Node) []*graph.Node {
	m := c.runner.Model()
	in := m.Input()
	layer, grid := c.layers[li], c.grids[li]
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		x, classes, idx := inputs[0], inputs[1], inputs[2]
		n := x.Shape().Dimensions[0]
		k := classes.Shape().Dimensions[1]
		ch := grid.Channels
		var logits *graph.Node
		if !p.Ablate {
			a := inputs[3] // [N,C,h,w]
			// The passes' channels, picked with a one-hot matrix (the
			// pure-Go backend has no DynamicSlice).
			ab := graph.Einsum("nbc,nchw->nbhw", graph.OneHot(idx, ch, a.DType()), a)
			up := resizeAlignCorners(ab, in.Height, in.Width)
			lo := graph.ReduceAndKeep(up, graph.ReduceMin, 2, 3)
			hi := graph.ReduceAndKeep(up, graph.ReduceMax, 2, 3)
			masks := graph.Div(graph.Sub(up, lo), graph.AddScalar(graph.Sub(hi, lo), 1e-8)) // [N,B,H,W]
			if p.Sample != nil {
				s := graph.ConvertDType(inputs[4], masks.DType())
				var noise *graph.Node
				if p.Noisy {
					noise = graph.ConvertDType(inputs[5], masks.DType())
				}
				masks = p.Sample(masks, s, noise)
			}
			xc := channelsFirst(x, in.Layout)                                    // [N,Cin,H,W]
			xm := graph.Mul(graph.ExpandAxes(xc, 1), graph.ExpandAxes(masks, 2)) // [N,B,Cin,H,W]
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
			keep := mergeLeading(graph.OneMinus(graph.OneHot(idx, ch, a.DType()))) // [N·B,C]
			keep = graph.Reshape(keep, grid.ChannelShape(n*b)...)
			logits = rewire(base, map[*graph.Node]*graph.Node{a: graph.Mul(a, keep)}, nil)
			if logits == base {
				panic(fmt.Errorf("the logits do not depend on layer %q, so ablating its channels changes nothing; pick a layer the output is computed from", layer))
			}
		}
		logits = c.logits(t, logits)
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
