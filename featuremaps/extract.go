package featuremaps

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"strings"

	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/tensors"
)

// All is the layer name that selects every layer with spatial axes.
const All = "all"

// Select resolves layer names into the model's layers, in model order (the
// order of [models.Model.Layers], input to output), without duplicates.
// The name [All] selects every layer with spatial axes
// ([models.Layer.Spatial]). An unknown name is an error that lists the
// closest names. A layer must be image-like (rank 4, in the model's layout)
// or a vector per image (rank 2, [N, C], such as the logits); other shapes
// are rejected.
func Select(m models.Model, names ...string) ([]models.Layer, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no layer given: name layers of %s or %q (list them with `convlens layers`)", m.Name(), All)
	}
	want := map[string]bool{}
	all := false
	for _, name := range names {
		if name == All {
			all = true
			continue
		}
		l, err := models.FindLayer(m, name)
		if err != nil {
			return nil, err
		}
		if r := l.Shape.Rank(); r != 4 && r != 2 {
			return nil, fmt.Errorf("layer %q of model %s has shape %v: feature maps need an image-like layer (%s) or a vector per image ([N C])",
				name, m.Name(), l.Shape.Dimensions, layoutDims(m.Input().Layout))
		}
		want[name] = true
	}
	var out []models.Layer
	for _, l := range m.Layers() {
		if want[l.Name] || (all && l.Spatial(m.Input().Layout)) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("model %s has no layer with spatial axes for %q", m.Name(), All)
	}
	return out, nil
}

func layoutDims(l models.Layout) string {
	if l == models.NHWC {
		return "[N H W C]"
	}
	return "[N C H W]"
}

// Activations are the feature maps of a batch at a set of layers, all from
// one forward pass. Create them with [Extract].
type Activations struct {
	// Model is the name of the model.
	Model string
	// N is the number of images in the batch.
	N int
	// Maps holds one entry per layer, in model order.
	Maps []*FeatureMap
	// Logits of each image, [N, NumClasses], from the same pass.
	Logits     []float32
	NumClasses int
}

// FeatureMap is one layer's activation for a batch, channels first whatever
// the model's layout.
type FeatureMap struct {
	// Layer is the layer's description (name, op, shape for a batch of one).
	Layer models.Layer
	// N images, C channels of H×W positions. A vector layer ([N, C]) has H = W = 1.
	N, C, H, W int
	// Spatial reports whether the layer has spatial axes (see [models.Layer.Spatial]):
	// only those can be drawn as a filter grid.
	Spatial bool
	// Values holds the activations, [N, C, H, W], row-major: the value of image
	// n, channel c at row y and column x is Values[((n*C+c)*H+y)*W+x]. An
	// NHWC model's activations are transposed into this order.
	Values []float32
}

// Extract runs the batch x (preprocessed, see [models.Input.Tensor]) through
// the runner's model once and returns the activations of the named layers
// (see [Select]: [All] is every layer with spatial axes), in model order.
// A NaN or an infinity in the input, an activation or the logits is a
// [*NonFiniteError].
func Extract(r *models.Runner, x *tensors.Tensor, layers ...string) (*Activations, error) {
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("featuremaps.Extract: %w", err)
	}
	if x == nil {
		return nil, errors.New("featuremaps.Extract: the batch x is nil: make one with the model's Input().Tensor")
	}
	m := r.Model()
	sel, err := Select(m, layers...)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(sel))
	for i, l := range sel {
		names[i] = l.Name
	}
	logits, acts, err := r.Run(x, names...)
	if err != nil {
		return nil, err
	}
	defer func() {
		logits.FinalizeAll()
		for _, a := range acts {
			a.FinalizeAll()
		}
	}()
	out := &Activations{Model: m.Name(), N: x.Shape().Dimensions[0]}
	if d := logits.Shape().Dimensions; len(d) == 2 {
		out.NumClasses = d[1]
		out.Logits = tensors.MustCopyFlatData[float32](logits)
	}
	layout := m.Input().Layout
	for i, a := range acts {
		fm, err := newFeatureMap(sel[i], layout, a)
		if err != nil {
			return nil, err
		}
		out.Maps = append(out.Maps, fm)
	}
	if err := out.checkFinite(x); err != nil {
		return nil, err
	}
	return out, nil
}

// ExtractImages preprocesses images for the runner's model and extracts
// their activations, as [Extract].
func ExtractImages(r *models.Runner, images []image.Image, layers ...string) (*Activations, error) {
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("featuremaps.ExtractImages: %w", err)
	}
	x, err := r.Model().Input().Tensor(images...)
	if err != nil {
		return nil, err
	}
	defer x.FinalizeAll()
	return Extract(r, x, layers...)
}

// newFeatureMap copies an activation tensor into channels-first order.
func newFeatureMap(l models.Layer, layout models.Layout, t *tensors.Tensor) (*FeatureMap, error) {
	d := t.Shape().Dimensions
	data := tensors.MustCopyFlatData[float32](t)
	fm := &FeatureMap{Layer: l, Spatial: l.Spatial(layout)}
	switch {
	case len(d) == 2:
		fm.N, fm.C, fm.H, fm.W = d[0], d[1], 1, 1
		fm.Values = data
	case len(d) == 4 && layout == models.NHWC:
		fm.N, fm.H, fm.W, fm.C = d[0], d[1], d[2], d[3]
		fm.Values = make([]float32, len(data))
		for n := range fm.N {
			for p := range fm.H * fm.W {
				for c := range fm.C {
					fm.Values[(n*fm.C+c)*fm.H*fm.W+p] = data[(n*fm.H*fm.W+p)*fm.C+c]
				}
			}
		}
	case len(d) == 4:
		fm.N, fm.C, fm.H, fm.W = d[0], d[1], d[2], d[3]
		fm.Values = data
	default:
		return nil, fmt.Errorf("layer %q produced shape %v: feature maps need rank 4 or 2", l.Name, d)
	}
	return fm, nil
}

// Layer returns the feature map of the named layer. A layer that was not
// extracted is an error listing those that were.
func (a *Activations) Layer(name string) (*FeatureMap, error) {
	names := make([]string, len(a.Maps))
	for i, fm := range a.Maps {
		if fm.Layer.Name == name {
			return fm, nil
		}
		names[i] = fm.Layer.Name
	}
	return nil, fmt.Errorf("layer %q was not extracted; extracted: %s", name, strings.Join(names, ", "))
}

// Stats summarises every extracted layer for image n, in model order,
// each with its topK most active channels.
func (a *Activations) Stats(n, topK int) ([]Stats, error) {
	out := make([]Stats, len(a.Maps))
	for i, fm := range a.Maps {
		s, err := fm.Stats(n, topK)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// Depth is the depth summary of image n: the blank fraction and mean
// activation of every extracted layer, input to output.
func (a *Activations) Depth(n int) (Depth, error) {
	stats, err := a.Stats(n, 0)
	if err != nil {
		return Depth{}, err
	}
	var d Depth
	for _, s := range stats {
		d.Layers = append(d.Layers, s.Layer)
		d.BlankFraction = append(d.BlankFraction, s.BlankFraction)
		d.Mean = append(d.Mean, s.Mean)
	}
	return d, nil
}

// checkImage verifies that n indexes an image of the batch.
func (f *FeatureMap) checkImage(n int) error {
	if n < 0 || n >= f.N {
		return fmt.Errorf("image %d out of range: the batch has %d image(s), numbered from 0", n, f.N)
	}
	return nil
}

func (f *FeatureMap) checkChannel(c int) error {
	if c < 0 || c >= f.C {
		return fmt.Errorf("channel %d out of range: layer %q has %d channels, numbered from 0", c, f.Layer.Name, f.C)
	}
	return nil
}

// plane returns channel c of image n, H×W values row-major (not a copy).
func (f *FeatureMap) plane(n, c int) []float32 {
	size := f.H * f.W
	i := n*f.C + c
	return f.Values[i*size : (i+1)*size]
}

// Channel returns channel c of image n as a map (sharing the values), ready
// for display to draw.
func (f *FeatureMap) Channel(n, c int) (heatmap.Map, error) {
	if err := f.checkImage(n); err != nil {
		return heatmap.Map{}, err
	}
	if err := f.checkChannel(c); err != nil {
		return heatmap.Map{}, err
	}
	return heatmap.Map{Width: f.W, Height: f.H, Values: f.plane(n, c)}, nil
}

// Stats are the per-image statistics of one layer.
type Stats struct {
	// Layer name and Op, as [models.Layer].
	Layer, Op string
	// Channels and spatial size (1×1 for a vector layer).
	Channels, Height, Width int
	// Mean activation over all channels and positions.
	Mean float64
	// Blank channels: those whose maximum over the image is ≤ 0, so the
	// pattern they detect is absent anywhere. BlankFraction is Blank/Channels.
	Blank         int
	BlankFraction float64
	// Top channels by mean activation, highest first (ties: lower index first).
	Top []ChannelStat
}

// ChannelStat is one channel's mean and maximum over an image.
type ChannelStat struct {
	Channel   int
	Mean, Max float64
}

// ChannelStats returns the mean and maximum of every channel of image n.
func (f *FeatureMap) ChannelStats(n int) ([]ChannelStat, error) {
	if err := f.checkImage(n); err != nil {
		return nil, err
	}
	out := make([]ChannelStat, f.C)
	for c := range f.C {
		var sum float64
		hi := math.Inf(-1)
		for _, v := range f.plane(n, c) {
			sum += float64(v)
			hi = math.Max(hi, float64(v))
		}
		out[c] = ChannelStat{Channel: c, Mean: sum / float64(f.H*f.W), Max: hi}
	}
	return out, nil
}

// Stats summarises image n at this layer, with its topK most active channels
// (all of them if topK exceeds the channel count; none for 0).
func (f *FeatureMap) Stats(n, topK int) (Stats, error) {
	if topK < 0 {
		return Stats{}, fmt.Errorf("top %d: K must be at least 0", topK)
	}
	chans, err := f.ChannelStats(n)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{Layer: f.Layer.Name, Op: f.Layer.Op, Channels: f.C, Height: f.H, Width: f.W}
	var sum float64
	for _, c := range chans {
		sum += c.Mean
		if c.Max <= 0 {
			s.Blank++
		}
	}
	s.Mean = sum / float64(f.C)
	s.BlankFraction = float64(s.Blank) / float64(f.C)
	s.Top = topChannels(chans, topK)
	return s, nil
}

// TopChannels returns the indices of image n's k channels with the highest
// mean activation, highest first.
func (f *FeatureMap) TopChannels(n, k int) ([]int, error) {
	s, err := f.Stats(n, k)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(s.Top))
	for i, c := range s.Top {
		out[i] = c.Channel
	}
	return out, nil
}

func topChannels(chans []ChannelStat, k int) []ChannelStat {
	sorted := slices.Clone(chans)
	slices.SortStableFunc(sorted, func(a, b ChannelStat) int {
		switch {
		case a.Mean > b.Mean:
			return -1
		case a.Mean < b.Mean:
			return 1
		}
		return 0
	})
	return sorted[:min(k, len(sorted))]
}

// Depth is a depth summary: per layer, input to output, the fraction of
// blank channels and the mean activation of one image.
type Depth struct {
	Layers        []string
	BlankFraction []float64
	Mean          []float64
}

// String formats the summary as a table, one layer a line.
func (d Depth) String() string {
	var b strings.Builder
	w := len("layer")
	for _, l := range d.Layers {
		w = max(w, len(l))
	}
	fmt.Fprintf(&b, "%-*s  %6s  %10s\n", w, "layer", "blank", "mean")
	for i, l := range d.Layers {
		fmt.Fprintf(&b, "%-*s  %5.1f%%  %10.4g\n", w, l, 100*d.BlankFraction[i], d.Mean[i])
	}
	return b.String()
}

// Tiles returns image n's maps at this layer as tiles of a filter grid (which
// display.TileGrid draws, each tile normalised on its own): the given
// channels in the order given, or all channels, each labelled with its
// channel index, titled with the layer's name and shape. A layer without
// spatial axes is an error.
func (f *FeatureMap) Tiles(n int, channels ...int) (heatmap.Tiles, error) {
	if !f.Spatial {
		return heatmap.Tiles{}, fmt.Errorf("layer %q has %d channels of %dx%d: no spatial axes to draw as a grid; pick a convolutional layer (list them with `convlens layers`)",
			f.Layer.Name, f.C, f.H, f.W)
	}
	if err := f.checkImage(n); err != nil {
		return heatmap.Tiles{}, err
	}
	title := fmt.Sprintf("%s: %d channels of %dx%d, image %d", f.Layer.Name, f.C, f.H, f.W, n)
	if channels == nil {
		channels = make([]int, f.C)
		for c := range channels {
			channels[c] = c
		}
	} else {
		title = fmt.Sprintf("%s: %d of %d channels of %dx%d, image %d", f.Layer.Name, len(channels), f.C, f.H, f.W, n)
	}
	maps := make([]heatmap.Map, len(channels))
	labels := make([]string, len(channels))
	for i, c := range channels {
		m, err := f.Channel(n, c)
		if err != nil {
			return heatmap.Tiles{}, err
		}
		maps[i] = m
		labels[i] = fmt.Sprint(c)
	}
	return heatmap.Tiles{Title: title, Labels: labels, Maps: maps}, nil
}

// TopTiles is [FeatureMap.Tiles] of image n's k most active channels, most
// active first.
func (f *FeatureMap) TopTiles(n, k int) (heatmap.Tiles, error) {
	if k < 1 {
		return heatmap.Tiles{}, fmt.Errorf("top %d: K must be at least 1", k)
	}
	if !f.Spatial {
		return f.Tiles(n) // the same error
	}
	top, err := f.TopChannels(n, k)
	if err != nil {
		return heatmap.Tiles{}, err
	}
	t, err := f.Tiles(n, top...)
	if err != nil {
		return heatmap.Tiles{}, err
	}
	t.Title = fmt.Sprintf("%s: top %d of %d channels of %dx%d by mean activation, image %d",
		f.Layer.Name, len(top), f.C, f.H, f.W, n)
	return t, nil
}
