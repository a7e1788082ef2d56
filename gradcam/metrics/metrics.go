// Package metrics measures how faithful saliency maps are to the model they
// explain: does removing what a map calls important change the model's
// score, more than removing what a random map picks?
//
// Every metric perturbs the images on the host, runs the model on the
// perturbed copies in batches of [Options.BatchSize] (padded, so one compiled
// graph serves every batch), and scores each copy by the probability of the
// explained class (softmax of the logits; [Options.Logits] scores the logit
// instead). Everything is deterministic: the only randomness (ROAD's noise,
// [RandomMaps], [Randomize]) comes from gradcam.NormalNoise with
// [Options.Seed].
//
// Maps are given per image at the model's input size, row-major H×W, as
// [gradcam.Result.Map] returns them ([FromResult] extracts them). A pixel is
// removed by setting all its channels; pixels are ranked by map value,
// highest first, ties by position (row-major), so rankings are reproducible.
//
//   - [Evaluator.Deletion] and [Evaluator.Insertion]: curves and their AUC
//     (Petsiuk et al., 2018).
//   - [Evaluator.Confidence]: average drop and increase in confidence
//     (Chattopadhay et al., 2018).
//   - [Evaluator.ROAD]: remove and debias, most and least relevant first
//     (Rong et al., 2022).
//   - [Randomization]: the model-parameter randomisation sanity check
//     (Adebayo et al., 2018).
package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/tensors"
)

// Options configure an [Evaluator]. The zero value gives the defaults.
type Options struct {
	// BatchSize is how many perturbed images go through the model per call (default 32).
	BatchSize int
	// Steps of the deletion and insertion curves: the curve has Steps+1
	// points, at the fractions 0, 1/Steps, ..., 1 of pixels removed or
	// revealed (default 32).
	Steps int
	// Baseline is the value a removed pixel takes in every channel, in the
	// model's input space (default 0: the mean colour for ImageNet-normalised
	// models, black for [0,1] inputs). Insertion starts from an image of it.
	Baseline float32
	// Percentiles of pixels ROAD removes (default 10, 20, ..., 90).
	Percentiles []float64
	// NoiseStd is the standard deviation of the noise ROAD adds to imputed
	// pixels, in the model's input space (default 0.02).
	NoiseStd float64
	// Seed of every random draw.
	Seed uint64
	// Logits scores the explained class's logit instead of its softmax probability.
	Logits bool
	// Progress, when set, is called after each call of the model.
	Progress func(Progress)
}

// Progress reports how far a metric has got, in perturbed images.
type Progress struct {
	Metric      string
	Done, Total int
}

// Evaluator runs the metrics on one model.
type Evaluator struct {
	runner *models.Runner
	opt    Options
}

// New returns an Evaluator for the runner's model, validating the runner
// ([models.Runner.Err]) and the options.
func New(r *models.Runner, opt Options) (*Evaluator, error) {
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("metrics.New: runner r: %w", err)
	}
	if opt.BatchSize == 0 {
		opt.BatchSize = 32
	}
	if opt.Steps == 0 {
		opt.Steps = 32
	}
	if opt.Percentiles == nil {
		opt.Percentiles = []float64{10, 20, 30, 40, 50, 60, 70, 80, 90}
	}
	if opt.NoiseStd == 0 {
		opt.NoiseStd = 0.02
	}
	switch {
	case opt.BatchSize < 1:
		return nil, fmt.Errorf("batch size %d: it must be at least 1", opt.BatchSize)
	case opt.Steps < 1:
		return nil, fmt.Errorf("%d steps: a curve needs at least 1", opt.Steps)
	case opt.NoiseStd < 0:
		return nil, fmt.Errorf("noise standard deviation %g is negative", opt.NoiseStd)
	}
	for _, p := range opt.Percentiles {
		if !(p > 0 && p < 100) {
			return nil, fmt.Errorf("ROAD percentile %g: percentiles must lie strictly between 0 and 100", p)
		}
	}
	return &Evaluator{runner: r, opt: opt}, nil
}

// FromResult returns the maps and classes of target k of a gradcam result,
// as the metrics take them. A nil or empty result, or a k outside its
// targets, is an error.
func FromResult(res *gradcam.Result, k int) (maps [][]float32, classes []int, err error) {
	if res == nil {
		return nil, nil, errors.New("metrics.FromResult: result res is nil: get one from CAM.Explain, and check its error")
	}
	if res.N <= 0 {
		return nil, nil, fmt.Errorf("metrics.FromResult: result res is empty (N=%d images): get one from CAM.Explain, and check its error", res.N)
	}
	for n := range res.N {
		m, err := res.Map(n, k)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics.FromResult: %w", err)
		}
		c, err := res.Class(n, k)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics.FromResult: %w", err)
		}
		maps = append(maps, m.Values)
		classes = append(classes, c)
	}
	return maps, classes, nil
}

// RandomMaps returns n maps of h×w standard normal values from
// gradcam.NormalNoise(seed): the baseline a faithful method must beat. A
// negative n, a size that is not positive or larger than
// models.MaxImagePixels, or n maps too many to count, is an error.
func RandomMaps(n, h, w int, seed uint64) ([][]float32, error) {
	switch {
	case n < 0:
		return nil, fmt.Errorf("metrics.RandomMaps: n=%d maps: give at least 0", n)
	case h <= 0 || w <= 0:
		return nil, fmt.Errorf("metrics.RandomMaps: maps of h×w = %d×%d: both sides must be at least 1", h, w)
	case h > models.MaxImagePixels/w:
		return nil, fmt.Errorf("metrics.RandomMaps: maps of h×w = %d×%d are over models.MaxImagePixels (%d pixels): give the model's input size", h, w, models.MaxImagePixels)
	case n > math.MaxInt/(h*w):
		return nil, fmt.Errorf("metrics.RandomMaps: n=%d maps of %d×%d overflow a slice's length: give fewer maps", n, h, w)
	}
	if n == 0 {
		return [][]float32{}, nil
	}
	all, _ := gradcam.NormalNoise(seed, n*h*w) // n, h, w ≥ 0, checked above
	maps := make([][]float32, n)
	for i := range maps {
		maps[i] = all[i*h*w : (i+1)*h*w]
	}
	return maps, nil
}

// batch is a checked batch of images on the host.
type batch struct {
	in      models.Input
	data    []float32 // [N, ...] in the model's layout
	n, size int       // images, values per image
	maps    [][]float32
	classes []int
}

// errNilEvaluator is what the methods of a nil *Evaluator return.
var errNilEvaluator = errors.New("metrics: the evaluator is nil: make one with metrics.New, and check its error")

// check validates x, maps and classes against the model.
func (e *Evaluator) check(metric string, x *tensors.Tensor, maps [][]float32, classes []int) (*batch, error) {
	if e == nil || e.runner == nil {
		return nil, errNilEvaluator
	}
	if err := x.CheckValid(); err != nil {
		return nil, fmt.Errorf("metrics: %s: input x: %v: give a batch from Input.Tensor, and check its error", metric, err)
	}
	m := e.runner.Model()
	if err := models.CheckBatch(m, x.Shape()); err != nil {
		return nil, err
	}
	in := m.Input()
	n := x.Shape().Dimensions[0]
	if len(maps) != n {
		return nil, fmt.Errorf("%d maps for %d images: give one map per image", len(maps), n)
	}
	if len(classes) != n {
		return nil, fmt.Errorf("%d classes for %d images: give one class per image", len(classes), n)
	}
	for i, mp := range maps {
		if len(mp) != in.Height*in.Width { // Also a nil map.
			return nil, fmt.Errorf("map %d has %d values; the model's input is %dx%d, so maps need %d (resize them to the input)",
				i, len(mp), in.Height, in.Width, in.Height*in.Width)
		}
		for _, v := range mp {
			if math.IsNaN(float64(v)) {
				return nil, fmt.Errorf("map %d contains NaN", i)
			}
		}
	}
	numClasses := 0
	if layers := m.Layers(); len(layers) > 0 && layers[len(layers)-1].Shape.Rank() == 2 {
		numClasses = layers[len(layers)-1].Shape.Dimensions[1]
	}
	for i, c := range classes {
		if c < 0 || (numClasses > 0 && c >= numClasses) {
			return nil, fmt.Errorf("class %d of image %d is out of range: the model has %d classes", c, i, numClasses)
		}
	}
	data := tensors.MustCopyFlatData[float32](x)
	return &batch{in: in, data: data, n: n, size: len(data) / n, maps: maps, classes: classes}, nil
}

// image returns a copy of image i.
func (b *batch) image(i int) []float32 { return slices.Clone(b.data[i*b.size : (i+1)*b.size]) }

// index returns the position of channel c of pixel p in one image.
func (b *batch) index(c, p int) int {
	if b.in.Layout == models.NHWC {
		return p*b.in.Channels + c
	}
	return c*b.in.Height*b.in.Width + p
}

// set sets every channel of pixel p of img to v.
func (b *batch) set(img []float32, p int, v float32) {
	for c := range b.in.Channels {
		img[b.index(c, p)] = v
	}
}

// ranking returns image i's pixels ordered by map value, highest first, ties by position.
func (b *batch) ranking(i int) []int {
	mp := b.maps[i]
	order := make([]int, len(mp))
	for p := range order {
		order[p] = p
	}
	slices.SortStableFunc(order, func(p, q int) int {
		switch {
		case mp[p] > mp[q]:
			return -1
		case mp[p] < mp[q]:
			return 1
		}
		return 0
	})
	return order
}

// job is one perturbed image to score, for image `owner`.
type job struct {
	owner int
	data  []float32
}

// score runs the jobs through the model in padded batches and returns each
// one's score for its owner's class.
func (e *Evaluator) score(metric string, b *batch, jobs []job) ([]float64, error) {
	bs := min(e.opt.BatchSize, len(jobs))
	out := make([]float64, len(jobs))
	for start := 0; start < len(jobs); start += bs {
		data := make([]float32, 0, bs*b.size)
		for j := start; j < start+bs; j++ {
			data = append(data, jobs[min(j, len(jobs)-1)].data...) // pad with the last job
		}
		logits, _, err := e.runner.Run(tensors.FromFlatDataAndDimensions(data, b.in.Shape(bs)...))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", metric, err)
		}
		l := tensors.MustCopyFlatData[float32](logits)
		logits.FinalizeAll()
		classes := len(l) / bs
		for j := start; j < min(start+bs, len(jobs)); j++ {
			row := l[(j-start)*classes : (j-start+1)*classes]
			owner := jobs[j].owner
			if c := b.classes[owner]; c >= classes {
				return nil, fmt.Errorf("%s: class %d of image %d is out of range: the model has %d classes", metric, c, owner, classes)
			}
			if out[j], err = e.classScore(row, b.classes[owner]); err != nil {
				return nil, fmt.Errorf("%s: image %d: %w", metric, owner, err)
			}
		}
		if e.opt.Progress != nil {
			e.opt.Progress(Progress{Metric: metric, Done: min(start+bs, len(jobs)), Total: len(jobs)})
		}
	}
	return out, nil
}

// classScore is the softmax probability of class c (or its logit); a
// non-finite logit is an error.
func (e *Evaluator) classScore(row []float32, c int) (float64, error) {
	if e.opt.Logits {
		if v := float64(row[c]); math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("the logit of class %d is %v: the model's output is not finite", c, v)
		}
		return float64(row[c]), nil
	}
	p, err := models.Softmax(row)
	if err != nil {
		return 0, err
	}
	return p[c], nil
}

// mean is the arithmetic mean of v.
func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
