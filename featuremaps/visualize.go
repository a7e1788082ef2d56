package featuremaps

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Objective is what feature visualisation maximises: the mean activation of
// one channel of a layer, or of a single unit (a "neuron": one channel at
// one position).
type Objective struct {
	Layer   string
	Channel int
	// Neuron selects the unit at column X, row Y of the layer's spatial grid
	// instead of the channel's mean over all positions.
	Neuron bool
	X, Y   int
}

// ChannelObjective maximises the mean of channel c of layer over all positions.
func ChannelObjective(layer string, c int) Objective { return Objective{Layer: layer, Channel: c} }

// NeuronObjective maximises channel c of layer at column x, row y.
func NeuronObjective(layer string, c, x, y int) Objective {
	return Objective{Layer: layer, Channel: c, Neuron: true, X: x, Y: y}
}

func (o Objective) String() string {
	if o.Neuron {
		return fmt.Sprintf("%s channel %d at (%d,%d)", o.Layer, o.Channel, o.X, o.Y)
	}
	return fmt.Sprintf("%s channel %d", o.Layer, o.Channel)
}

// VisOptions configure feature visualisation. Start from
// [DefaultVisOptions]: in a zero VisOptions every transform and penalty is
// off and Steps is 0, which is an error.
type VisOptions struct {
	// Steps of gradient ascent, and the Adam step size in parameter units.
	Steps        int
	LearningRate float64
	// Seed makes the run reproducible: the same seed, options and model give
	// the same images.
	Seed uint64
	// Noise is the standard deviation of the random start, in parameter
	// units. Lucid's 0.01 starts from an almost uniform grey image; a ReLU
	// unit that such an image leaves at zero has no gradient and stays grey,
	// so the default, 1, starts from visible noise instead.
	Noise float64

	// Robustness transforms, drawn afresh at every step, so that the image
	// must excite the unit wherever and however it is seen: a shift of up to
	// Jitter pixels on each axis, a zoom by a factor in [1-Scale, 1+Scale]
	// and a rotation by up to Rotate degrees either way, all applied as one
	// bilinear resampling with mirrored borders.
	Jitter int
	Scale  float64
	Rotate float64

	// Penalties subtracted from the objective: L2 times the mean of
	// (pixel − 0.5)², and TV times the total variation (mean absolute
	// difference between neighbouring pixels, across and down). Pixels are in
	// [0,1], so a useful size depends on the activations' scale: start around
	// a hundredth of the activation you expect.
	L2, TV float64

	// Fourier parameterises the image by its spectrum, scaled by
	// 1/frequency^Decay, instead of by its pixels: gradient steps then favour
	// low frequencies, which removes most of the high-frequency noise of a
	// pixel parameterisation. Decorrelate mixes the three colour channels
	// through the square root of ImageNet's colour correlation matrix, so
	// that steps move along natural colour directions (RGB models only).
	Fourier     bool
	Decay       float64
	Decorrelate bool

	// BatchSize is how many channels [VisualizeLayer] optimises together.
	BatchSize int

	// Progress, if set, is called after every step.
	Progress func(Progress)
}

// DefaultVisOptions are the settings of distill.pub's "Feature
// Visualization" (Lucid) scaled for small inputs: 256 Adam steps of 0.05,
// jitter 4 pixels, zoom ±5%, rotation ±5°, Fourier and colour-decorrelated
// parameterisation with 1/f decay, no penalties, seed 1, batches of 8; the
// random start has Noise 1 (see VisOptions.Noise).
func DefaultVisOptions() VisOptions {
	return VisOptions{
		Steps: 256, LearningRate: 0.05, Seed: 1, Noise: 1,
		Jitter: 4, Scale: 0.05, Rotate: 5,
		Fourier: true, Decay: 1, Decorrelate: true,
		BatchSize: 8,
	}
}

// Progress reports one step of an optimisation.
type Progress struct {
	// Step (1-based) of Steps.
	Step, Steps int
	// Batch (1-based) of Batches, for [VisualizeLayer]; 1 of 1 for [Visualize].
	Batch, Batches int
	// Objectives this batch optimises, and the value of each (under this
	// step's transforms, before penalties).
	Objectives []Objective
	Values     []float32
}

// Visualization holds the images synthesised for a set of objectives.
type Visualization struct {
	Objectives []Objective
	// Input describes the model's input, which the images have.
	Input models.Input
	// Pixels of each image, [Height, Width, Channels] row-major, in [0,1],
	// before the model's normalisation.
	Pixels [][]float32
	// Initial and Final value of each objective, measured on the whole image
	// without transforms: on the random start and on the result.
	Initial, Final []float32
}

// Image returns image i as a picture (grey for a one-channel model).
func (v *Visualization) Image(i int) *image.RGBA {
	in := v.Input
	img := image.NewRGBA(image.Rect(0, 0, in.Width, in.Height))
	for p := range in.Height * in.Width {
		for k := range 3 {
			c := min(k, in.Channels-1)
			img.Pix[4*p+k] = uint8(math.Round(float64(min(max(v.Pixels[i][p*in.Channels+c], 0), 1)) * 255))
		}
		img.Pix[4*p+3] = 0xff
	}
	return img
}

// Images returns every image as a picture.
func (v *Visualization) Images() []image.Image {
	out := make([]image.Image, len(v.Pixels))
	for i := range out {
		out[i] = v.Image(i)
	}
	return out
}

// Tensor returns the images as a batch the model takes (normalised, in its
// layout), to run them through the model again.
func (v *Visualization) Tensor() *tensors.Tensor {
	in := v.Input
	plane := in.Height * in.Width
	data := make([]float32, len(v.Pixels)*in.Channels*plane)
	for n, px := range v.Pixels {
		for p := range plane {
			for c := range in.Channels {
				x := normalize(in.Normalization, c, px[p*in.Channels+c])
				if in.Layout == models.NHWC {
					data[(n*plane+p)*in.Channels+c] = x
				} else {
					data[(n*in.Channels+c)*plane+p] = x
				}
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(data, in.Shape(len(v.Pixels))...)
}

func normalize(norm models.Normalization, c int, v float32) float32 {
	if len(norm.Mean) > 0 {
		v -= norm.Mean[c%len(norm.Mean)]
	}
	if len(norm.Std) > 0 {
		v /= norm.Std[c%len(norm.Std)]
	}
	return v
}

// Labels name the images, in order, by channel (and position, for a
// neuron): the labels of a grid of them (display.ImageGrid).
func (v *Visualization) Labels() []string {
	labels := make([]string, len(v.Objectives))
	for i, o := range v.Objectives {
		labels[i] = fmt.Sprint(o.Channel)
		if o.Neuron {
			labels[i] += fmt.Sprintf("@%d,%d", o.X, o.Y)
		}
	}
	return labels
}

// Title names what the images show, the layer and "feature visualisation":
// the title of a grid of them.
func (v *Visualization) Title() string {
	if len(v.Objectives) > 0 {
		return v.Objectives[0].Layer + ": feature visualisation"
	}
	return "feature visualisation"
}

// VisualizeLayer synthesises one image per channel of layer (the given
// channels, or all when channels is nil), BatchSize channels at a time, for
// a grid of what the layer's channels respond to. Batch b uses the seed
// Seed+b.
func VisualizeLayer(r *models.Runner, layer string, channels []int, opts VisOptions) (*Visualization, error) {
	l, err := models.FindLayer(r.Model(), layer)
	if err != nil {
		return nil, err
	}
	if channels == nil {
		c, _, _, err := layerDims(l, r.Model().Input().Layout)
		if err != nil {
			return nil, err
		}
		for i := range c {
			channels = append(channels, i)
		}
	}
	if opts.BatchSize < 1 {
		return nil, fmt.Errorf("visualisation options: BatchSize %d: want at least 1", opts.BatchSize)
	}
	batches := (len(channels) + opts.BatchSize - 1) / opts.BatchSize
	var out *Visualization
	for b := range batches {
		var objs []Objective
		for _, c := range channels[b*opts.BatchSize : min((b+1)*opts.BatchSize, len(channels))] {
			objs = append(objs, ChannelObjective(layer, c))
		}
		o := opts
		o.Seed = opts.Seed + uint64(b)
		v, err := visualize(r, o, objs, b+1, batches)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = v
			continue
		}
		out.Objectives = append(out.Objectives, v.Objectives...)
		out.Pixels = append(out.Pixels, v.Pixels...)
		out.Initial = append(out.Initial, v.Initial...)
		out.Final = append(out.Final, v.Final...)
	}
	if out == nil {
		return nil, errors.New("no channel to visualise")
	}
	return out, nil
}

// Visualize synthesises, by gradient ascent on the input, one image per
// objective that maximises it. All objectives must be on the same layer; they
// are optimised together as one batch. See the package documentation.
func Visualize(r *models.Runner, opts VisOptions, objectives ...Objective) (*Visualization, error) {
	return visualize(r, opts, objectives, 1, 1)
}

// layerDims are a layer's channels and spatial size, channels-first.
func layerDims(l models.Layer, layout models.Layout) (c, h, w int, err error) {
	d := l.Shape.Dimensions
	switch {
	case len(d) == 2:
		return d[1], 1, 1, nil
	case len(d) == 4 && layout == models.NHWC:
		return d[3], d[1], d[2], nil
	case len(d) == 4:
		return d[1], d[2], d[3], nil
	}
	return 0, 0, 0, fmt.Errorf("layer %q has shape %v: feature visualisation needs an image-like layer or a vector per image", l.Name, d)
}

func (o VisOptions) check() error {
	switch {
	case o.Steps < 1:
		return fmt.Errorf("visualisation options: Steps %d: want at least 1 (start from DefaultVisOptions)", o.Steps)
	case !(o.LearningRate > 0):
		return fmt.Errorf("visualisation options: LearningRate %g: want > 0", o.LearningRate)
	case o.Jitter < 0 || o.Scale < 0 || o.Scale >= 1 || o.Rotate < 0 || o.Rotate > 180:
		return fmt.Errorf("visualisation options: transforms Jitter %d, Scale %g, Rotate %g: want Jitter ≥ 0, 0 ≤ Scale < 1, 0 ≤ Rotate ≤ 180", o.Jitter, o.Scale, o.Rotate)
	case o.Noise < 0:
		return fmt.Errorf("visualisation options: Noise %g: want ≥ 0", o.Noise)
	case o.L2 < 0 || o.TV < 0:
		return fmt.Errorf("visualisation options: penalties L2 %g, TV %g: want ≥ 0", o.L2, o.TV)
	case o.Decay < 0:
		return fmt.Errorf("visualisation options: Decay %g: want ≥ 0", o.Decay)
	}
	return nil
}

func visualize(r *models.Runner, opts VisOptions, objs []Objective, batch, batches int) (*Visualization, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, errors.New("no objective given")
	}
	m := r.Model()
	in := m.Input()
	l, err := models.FindLayer(m, objs[0].Layer)
	if err != nil {
		return nil, err
	}
	c, h, w, err := layerDims(l, in.Layout)
	if err != nil {
		return nil, err
	}
	n := len(objs)
	// Objective weights, [N, C, h, w]: 1 on the units whose mean is maximised.
	weights := make([]float32, n*c*h*w)
	for i, o := range objs {
		if o.Layer != l.Name {
			return nil, fmt.Errorf("objectives on layers %q and %q: give one layer per call", l.Name, o.Layer)
		}
		if o.Channel < 0 || o.Channel >= c {
			return nil, fmt.Errorf("channel %d out of range: layer %q has %d channels, numbered from 0", o.Channel, l.Name, c)
		}
		plane := weights[(i*c+o.Channel)*h*w : (i*c+o.Channel+1)*h*w]
		if !o.Neuron {
			for p := range plane {
				plane[p] = 1
			}
			continue
		}
		if o.X < 0 || o.X >= w || o.Y < 0 || o.Y >= h {
			return nil, fmt.Errorf("neuron (%d,%d) out of range: layer %q is %dx%d (columns x rows)", o.X, o.Y, l.Name, w, h)
		}
		plane[o.Y*w+o.X] = 1
	}
	p := newParam(in, n, opts)
	rng := rand.New(rand.NewPCG(opts.Seed, 0x636f6e766c656e73)) // "convlens"
	for i := range p.values {
		p.values[i] = float32(rng.NormFloat64() * opts.Noise)
	}
	key := fmt.Sprintf("featuremaps/visualize\x00%s\x00%v\x00%v\x00%g\x00%g\x00%g", l.Name, opts.Fourier, opts.Decorrelate && in.Channels == 3, opts.Decay, opts.L2, opts.TV)
	e, err := r.Exec(key, visGraph(m, l.Name, opts))
	if err != nil {
		return nil, err
	}
	wt := tensors.FromFlatDataAndDimensions(weights, n, c, h, w)
	defer wt.FinalizeAll()
	identity := newSampler(in.Height, in.Width, 0, 1, 0, 0)
	step := func(s sampler) (values, grad, pixels []float32, err error) {
		pt := tensors.FromFlatDataAndDimensions(p.values, p.dims...)
		it := tensors.FromFlatDataAndDimensions(s.index, len(s.index), 1)
		ww := tensors.FromFlatDataAndDimensions(s.weight, len(s.weight)/4, 4)
		defer func() { pt.FinalizeAll(); it.FinalizeAll(); ww.FinalizeAll() }()
		outs, err := e.Exec(pt, it, ww, wt)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("feature visualisation on %s: %w", m.Name(), err)
		}
		defer func() {
			for _, o := range outs {
				o.FinalizeAll()
			}
		}()
		return tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1]), tensors.MustCopyFlatData[float32](outs[2]), nil
	}
	initial, _, _, err := step(identity)
	if err != nil {
		return nil, err
	}
	adam := newAdam(len(p.values))
	for s := 1; s <= opts.Steps; s++ {
		angle := (2*rng.Float64() - 1) * opts.Rotate * math.Pi / 180
		zoom := 1 + (2*rng.Float64()-1)*opts.Scale
		dx := float64(rng.IntN(2*opts.Jitter+1) - opts.Jitter)
		dy := float64(rng.IntN(2*opts.Jitter+1) - opts.Jitter)
		values, grad, _, err := step(newSampler(in.Height, in.Width, angle, zoom, dx, dy))
		if err != nil {
			return nil, err
		}
		adam.ascend(p.values, grad, opts.LearningRate)
		if opts.Progress != nil {
			opts.Progress(Progress{Step: s, Steps: opts.Steps, Batch: batch, Batches: batches, Objectives: objs, Values: values})
		}
	}
	final, _, pixels, err := step(identity)
	if err != nil {
		return nil, err
	}
	v := &Visualization{Objectives: objs, Input: in, Initial: initial, Final: final}
	size := in.Height * in.Width * in.Channels
	for i := range n {
		v.Pixels = append(v.Pixels, pixels[i*size:(i+1)*size])
	}
	return v, nil
}

// param is the optimised parameterisation of a batch of images: pixels
// [N, H, W, C] before the sigmoid, or a spectrum [N, C, 2, H, W] (real and
// imaginary parts).
type param struct {
	dims   []int
	values []float32
}

func newParam(in models.Input, n int, opts VisOptions) param {
	dims := []int{n, in.Height, in.Width, in.Channels}
	if opts.Fourier {
		dims = []int{n, in.Channels, 2, in.Height, in.Width}
	}
	size := 1
	for _, d := range dims {
		size *= d
	}
	return param{dims: dims, values: make([]float32, size)}
}

// adam is the Adam optimiser (β1 0.9, β2 0.999, ε 1e-8), run on the host.
type adam struct {
	m, v []float64
	t    int
}

func newAdam(n int) *adam { return &adam{m: make([]float64, n), v: make([]float64, n)} }

// ascend moves x up the gradient g.
func (a *adam) ascend(x, g []float32, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1, c2 := 1-math.Pow(b1, float64(a.t)), 1-math.Pow(b2, float64(a.t))
	for i, gi := range g {
		gf := float64(gi)
		a.m[i] = b1*a.m[i] + (1-b1)*gf
		a.v[i] = b2*a.v[i] + (1-b2)*gf*gf
		x[i] += float32(lr * (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + eps))
	}
}

// sampler is a bilinear resampling of an H×W image: output pixel p is
// Σ_k weight[4p+k] · input[index[4p+k]], indices into the flattened image.
type sampler struct {
	index  []int32
	weight []float32
}

// newSampler rotates by angle (radians), zooms by zoom and shifts by (dx, dy)
// pixels about the image centre; coordinates outside the image are mirrored
// back in.
func newSampler(h, w int, angle, zoom, dx, dy float64) sampler {
	s := sampler{index: make([]int32, 4*h*w), weight: make([]float32, 4*h*w)}
	cy, cx := float64(h-1)/2, float64(w-1)/2
	cos, sin := math.Cos(angle), math.Sin(angle)
	for y := range h {
		for x := range w {
			ox, oy := float64(x)-cx, float64(y)-cy
			sx := cx + (cos*ox+sin*oy)/zoom - dx
			sy := cy + (-sin*ox+cos*oy)/zoom - dy
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			p := 4 * (y*w + x)
			for k, t := range [4]struct {
				ix, iy float64
				wt     float64
			}{{x0, y0, (1 - fx) * (1 - fy)}, {x0 + 1, y0, fx * (1 - fy)}, {x0, y0 + 1, (1 - fx) * fy}, {x0 + 1, y0 + 1, fx * fy}} {
				s.index[p+k] = int32(mirror(int(t.iy), h)*w + mirror(int(t.ix), w))
				s.weight[p+k] = float32(t.wt)
			}
		}
	}
	return s
}

// mirror reflects i into [0, n): -1 → 1, n → n-2.
func mirror(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// colorSqrt is the square root of ImageNet's colour correlation matrix, as
// Lucid uses it (rows: output R, G, B), before normalisation by the largest
// column norm.
var colorSqrt = [3][3]float64{{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}}

// visGraph builds one step: inputs are the parameter, the sampler's indices
// [4HW, 1] and weights [HW, 4], and the objective weights [N, C, h, w];
// outputs are each image's objective [N], the gradient of the penalised
// objectives' sum with respect to the parameter, and the untransformed
// pixels [N, H, W, C] in [0,1].
func visGraph(m models.Model, layer string, opts VisOptions) func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
	in := m.Input()
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		p, idx, wts, objW := inputs[0], inputs[1], inputs[2], inputs[3]
		g := p.Graph()
		n, h, w, c := p.Shape().Dimensions[0], in.Height, in.Width, in.Channels

		// The image, [N, H, W, C], in [0,1].
		pre := p
		if opts.Fourier {
			pre = inverseDFT(p, h, w, opts.Decay)
		}
		if opts.Decorrelate && c == 3 {
			pre = graph.Einsum("nhwc,dc->nhwd", pre, graph.Const(g, colorMatrix()))
		}
		img := graph.Sigmoid(pre)

		// Robustness transforms: one bilinear resampling for the whole batch.
		flat := graph.Reshape(graph.TransposeAllAxes(img, 1, 2, 0, 3), h*w, n*c)
		taps := graph.Reshape(graph.Gather(flat, idx), h*w, 4, n*c)
		seen := graph.ReduceSum(graph.Mul(taps, graph.Reshape(wts, h*w, 4, 1)), 1)
		seen = graph.TransposeAllAxes(graph.Reshape(seen, h, w, n, c), 2, 0, 1, 3)

		// The model's normalisation, (v − Mean[c]) / Std[c], and layout.
		mean, std := make([]float32, c), make([]float32, c)
		for k := range c {
			std[k] = 1
			if nm := in.Normalization.Mean; len(nm) > 0 {
				mean[k] = nm[k%len(nm)]
			}
			if ns := in.Normalization.Std; len(ns) > 0 {
				std[k] = ns[k%len(ns)]
			}
		}
		x := graph.Div(graph.Sub(seen, graph.ExpandLeftToRank(graph.Const(g, mean), 4)), graph.ExpandLeftToRank(graph.Const(g, std), 4))
		if in.Layout == models.NCHW {
			x = graph.TransposeAllAxes(x, 0, 3, 1, 2)
		}

		_, acts := m.Forward(scope, x, []string{layer})
		a := acts[0]
		switch {
		case a.Rank() == 2:
			a = graph.Reshape(a, n, a.Shape().Dimensions[1], 1, 1)
		case in.Layout == models.NHWC:
			a = graph.TransposeAllAxes(a, 0, 3, 1, 2)
		}
		values := graph.Div(graph.ReduceSum(graph.Mul(a, objW), 1, 2, 3), graph.ReduceSum(objW, 1, 2, 3))

		total := graph.ReduceAllSum(values)
		if opts.L2 > 0 {
			l2 := graph.ReduceMean(graph.Square(graph.AddScalar(img, -0.5)), 1, 2, 3)
			total = graph.Sub(total, graph.MulScalar(graph.ReduceAllSum(l2), opts.L2))
		}
		if opts.TV > 0 && (h > 1 || w > 1) {
			var tv *graph.Node
			if h > 1 {
				d := graph.Sub(graph.Slice(img, graph.AxisRange(), graph.AxisRange(1)), graph.Slice(img, graph.AxisRange(), graph.AxisRange(0, h-1)))
				tv = graph.ReduceMean(graph.Abs(d), 1, 2, 3)
			}
			if w > 1 {
				d := graph.Sub(graph.Slice(img, graph.AxisRange(), graph.AxisRange(), graph.AxisRange(1)), graph.Slice(img, graph.AxisRange(), graph.AxisRange(), graph.AxisRange(0, w-1)))
				across := graph.ReduceMean(graph.Abs(d), 1, 2, 3)
				if tv == nil {
					tv = across
				} else {
					tv = graph.Add(tv, across)
				}
			}
			total = graph.Sub(total, graph.MulScalar(graph.ReduceAllSum(tv), opts.TV))
		}
		grad := graph.Gradient(total, p)[0]
		return []*graph.Node{values, grad, img}
	}
}

// colorMatrix is colorSqrt divided by its largest column norm, [out, in].
func colorMatrix() [][]float32 {
	var maxNorm float64
	for j := range 3 {
		var s float64
		for i := range 3 {
			s += colorSqrt[i][j] * colorSqrt[i][j]
		}
		maxNorm = math.Max(maxNorm, math.Sqrt(s))
	}
	out := make([][]float32, 3)
	for i := range 3 {
		out[i] = make([]float32, 3)
		for j := range 3 {
			out[i][j] = float32(colorSqrt[i][j] / maxNorm)
		}
	}
	return out
}

// inverseDFT turns a spectrum p [N, C, 2, H, W] (real, imaginary) into an
// image [N, H, W, C]: the real part of the 2-D inverse DFT of the spectrum
// scaled by 1/max(f, 1/max(H,W))^decay (f: the frequency in cycles per
// pixel), divided by 4·√(HW) as Lucid's fft_image does. It is written as
// matrix products with cosine and sine tables, which every backend runs
// (the pure-Go backend has no FFT).
func inverseDFT(p *graph.Node, h, w int, decay float64) *graph.Node {
	g := p.Graph()
	scale := make([]float32, h*w)
	for u := range h {
		for v := range w {
			fy := float64(min(u, h-u)) / float64(h)
			fx := float64(min(v, w-v)) / float64(w)
			f := math.Max(math.Hypot(fx, fy), 1/float64(max(h, w)))
			scale[u*w+v] = float32(math.Pow(f, -decay) / (4 * math.Sqrt(float64(h*w))))
		}
	}
	sc := graph.ExpandLeftToRank(graph.Const(g, tensors.FromFlatDataAndDimensions(scale, h, w)), 4)
	re := graph.Mul(graph.Squeeze(graph.SliceAxis(p, 2, graph.AxisElem(0)), 2), sc) // [N,C,H,W] over (u,v)
	im := graph.Mul(graph.Squeeze(graph.SliceAxis(p, 2, graph.AxisElem(1)), 2), sc)
	cy, sy := trig(g, h)
	cx, sx := trig(g, w)
	// Re Σ_uv (A + iB) e^{2πi(uy/H + vx/W)} = (Cy·A − Sy·B)·Cxᵀ − (Sy·A + Cy·B)·Sxᵀ.
	left := func(m, x *graph.Node) *graph.Node { return graph.Einsum("yu,ncuv->ncyv", m, x) }
	right := func(x, m *graph.Node) *graph.Node { return graph.Einsum("ncyv,xv->ncyx", x, m) }
	pp := graph.Sub(left(cy, re), left(sy, im))
	qq := graph.Add(left(sy, re), left(cy, im))
	img := graph.Sub(right(pp, cx), right(qq, sx))
	return graph.TransposeAllAxes(img, 0, 2, 3, 1)
}

// trig returns the n×n tables cos(2π·i·j/n) and sin(2π·i·j/n).
func trig(g *graph.Graph, n int) (cos, sin *graph.Node) {
	c, s := make([]float32, n*n), make([]float32, n*n)
	for i := range n {
		for j := range n {
			a := 2 * math.Pi * float64(i*j%n) / float64(n)
			c[i*n+j], s[i*n+j] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return graph.Const(g, tensors.FromFlatDataAndDimensions(c, n, n)), graph.Const(g, tensors.FromFlatDataAndDimensions(s, n, n))
}
