package featuremaps_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

func randomBatch(seed uint64, dims ...int) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	size := 1
	for _, d := range dims {
		size *= d
	}
	data := make([]float32, size)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// nhwcToNCHW transposes a [N,H,W,C] array.
func nhwcToNCHW(data []float32, n, h, w, c int) []float32 {
	out := make([]float32, len(data))
	for i := range n {
		for p := range h * w {
			for k := range c {
				out[(i*c+k)*h*w+p] = data[(i*h*w+p)*c+k]
			}
		}
	}
	return out
}

// TestExtractEqualsForwardPassNHWC: the activations are those of the model's
// own forward pass (models.Runner.Run), transposed to channels first.
func TestExtractEqualsForwardPassNHWC(t *testing.T) {
	m := modeltest.TinyNative() // NHWC, conv → relu → pool → logits
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	x := randomBatch(1, 2, 5, 6, 2)

	// Asked out of order and with a duplicate: model order, once each.
	acts, err := featuremaps.Extract(r, x, "pool", "relu", "conv", "relu")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fm := range acts.Maps {
		names = append(names, fm.Layer.Name)
	}
	if fmt.Sprint(names) != "[conv relu pool]" {
		t.Fatalf("layers %v, want model order [conv relu pool]", names)
	}
	logits, want, err := r.Run(x, "conv", "relu", "pool")
	if err != nil {
		t.Fatal(err)
	}
	for i, fm := range acts.Maps[:2] {
		if fm.N != 2 || fm.C != 4 || fm.H != 5 || fm.W != 6 || !fm.Spatial {
			t.Errorf("%s: N C H W = %d %d %d %d, spatial %v", fm.Layer.Name, fm.N, fm.C, fm.H, fm.W, fm.Spatial)
		}
		ref := nhwcToNCHW(tensors.MustCopyFlatData[float32](want[i]), 2, 5, 6, 4)
		if !slices.Equal(fm.Values, ref) {
			t.Errorf("%s: activations differ from Runner.Run's by %g", fm.Layer.Name, testutil.MaxAbsDiff(fm.Values, ref))
		}
	}
	pool := acts.Maps[2]
	if pool.C != 4 || pool.H != 1 || pool.W != 1 || pool.Spatial {
		t.Errorf("pool: C H W = %d %d %d, spatial %v; want a 4-vector", pool.C, pool.H, pool.W, pool.Spatial)
	}
	if !slices.Equal(pool.Values, tensors.MustCopyFlatData[float32](want[2])) {
		t.Error("pool differs from Runner.Run's")
	}
	if !slices.Equal(acts.Logits, tensors.MustCopyFlatData[float32](logits)) || acts.NumClasses != 3 {
		t.Error("logits differ from Runner.Run's")
	}

	// "all" is every layer with spatial axes: conv and relu, not pool or logits.
	all, err := featuremaps.Select(m, featuremaps.All)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Name != "conv" || all[1].Name != "relu" {
		t.Errorf("Select(all) = %v", all)
	}
	// Channel(n, c) is the [H,W] plane of the NHWC tensor at channel c.
	relu := tensors.MustCopyFlatData[float32](want[1])
	ch, err := acts.Maps[1].Channel(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 5 {
		for x := range 6 {
			if got, w := ch.At(x, y), relu[((1*5+y)*6+x)*4+3]; got != w {
				t.Fatalf("Channel(1,3) at (%d,%d) = %g, want %g", x, y, got, w)
			}
		}
	}
}

// TestExtractMatchesPyTorch: the ONNX fixture's activations equal PyTorch's
// (testdata/tinycnn/act_*.npy, written by scripts/reference/gen_fixtures.py), and
// extracting "all" layers in one pass gives the same values as asking for them
// one by one.
func TestExtractMatchesPyTorch(t *testing.T) {
	m, err := models.LoadONNX(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	data, shape := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "input.npy"))
	x := tensors.FromFlatDataAndDimensions(data, shape...)
	layers := map[string]string{ // manifest.json: ONNX output name → fixture
		"/layer1/layer1.0/relu_1/Relu_output_0": "act_layer1.npy",
		"/layer2/layer2.0/relu/Relu_output_0":   "act_layer2_mid.npy",
		"/layer2/layer2.0/relu_1/Relu_output_0": "act_layer2.npy",
	}
	acts, err := featuremaps.Extract(r, x, featuremaps.All)
	if err != nil {
		t.Fatal(err)
	}
	var spatial int
	for _, l := range m.Layers() {
		if l.Spatial(models.NCHW) {
			spatial++
		}
	}
	if len(acts.Maps) != spatial {
		t.Errorf("all: %d layers, the model has %d with spatial axes", len(acts.Maps), spatial)
	}
	for name, file := range layers {
		fm, err := acts.Layer(name)
		if err != nil {
			t.Fatal(err)
		}
		want, wantShape := testutil.ReadNPY(t, testutil.Testdata("tinycnn", file))
		if got := []int{fm.N, fm.C, fm.H, fm.W}; !slices.Equal(got, wantShape) {
			t.Errorf("%s: shape %v, PyTorch %v", name, got, wantShape)
		}
		if e := testutil.RelErr(fm.Values, want); e > 1e-5 {
			t.Errorf("%s: differs from PyTorch's activation by %.3g relative", name, e)
		}
		// The same layer alone, through Runner.Run: bit for bit.
		_, one, err := r.Run(x, name)
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.MaxAbsDiff(fm.Values, tensors.MustCopyFlatData[float32](one[0])); e > 1e-6 {
			t.Errorf("%s: extracting all layers differs from the layer alone by %g", name, e)
		}
	}
	if _, err := acts.Layer("/nope"); err == nil || !strings.Contains(err.Error(), "was not extracted") {
		t.Errorf("Layer(not extracted) = %v", err)
	}
}

// blankModel is an NCHW model whose answers are known by construction. Each
// channel c of layer "pre" is w[c]·x + b[c] of the one-channel input x, so for
// inputs in [0,1] the sign of each channel is known; "relu" is its ReLU,
// "pool" a 2x2 max-pool of that, "gap" the global average, and "logits" a
// dense layer.
//
//	c  w   b      image 0 (0.5, one pixel 1.0)  image 1 (all 0.2)
//	0  1   0.1    positive                      positive
//	1  -1  -0.1   negative: blank               negative: blank
//	2  0   0      zero: blank                   zero: blank
//	3  1   -0.9   positive at the 1.0 pixel     negative: blank
//	4  -2  0.5    negative: blank               positive (0.1)
//	5  1   -0.55  positive at the 1.0 pixel     negative: blank
//
// Image 0 has 3 blank channels of 6, image 1 has 4.
var (
	blankW = []float32{1, -1, 0, 1, -2, 1}
	blankB = []float32{0.1, -0.1, 0, -0.9, 0.5, -0.55}
)

func blankModel() *models.Native {
	forward := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		n := x.Shape().Dimensions[0]
		dims := []int{n, 6, 4, 4}
		w := graph.BroadcastToDims(graph.Reshape(graph.Const(x.Graph(), blankW), 1, 6, 1, 1), dims...)
		b := graph.BroadcastToDims(graph.Reshape(graph.Const(x.Graph(), blankB), 1, 6, 1, 1), dims...)
		pre := tap("pre", graph.Add(graph.Mul(graph.BroadcastToDims(x, dims...), w), b))
		relu := tap("relu", activation.Relu(pre))
		pool := tap("pool", graph.ReduceMax(graph.Reshape(relu, n, 6, 2, 2, 2, 2), 3, 5))
		gap := tap("gap", graph.ReduceMean(pool, 2, 3))
		dense := scope.VariableWithValue("dense", [][]float32{{1, 0}, {0, 1}, {1, 1}, {1, -1}, {0, 0}, {2, 1}}).ValueGraph(x)
		return tap("logits", graph.Dot(gap, dense).Product())
	}
	return models.NewNative("blank", models.Input{Layout: models.NCHW, Channels: 1, Height: 4, Width: 4}, model.NewStore(), forward)
}

func blankInput() *tensors.Tensor {
	data := make([]float32, 2*16)
	for i := range 16 {
		data[i], data[16+i] = 0.5, 0.2
	}
	data[5] = 1 // image 0, row 1, column 1
	return tensors.FromFlatDataAndDimensions(data, 2, 1, 4, 4)
}

func TestBlankFractionsKnownByConstruction(t *testing.T) {
	m := blankModel()
	if _, err := m.Check(); err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	acts, err := featuremaps.Extract(r, blankInput(), featuremaps.All, "gap")
	if err != nil {
		t.Fatal(err)
	}
	wantBlank := map[int][]int{0: {1, 2, 4}, 1: {1, 2, 3, 5}}
	for n, blank := range wantBlank {
		stats, err := acts.Stats(n, 2)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range stats {
			names = append(names, s.Layer)
		}
		if fmt.Sprint(names) != "[pre relu pool gap]" {
			t.Fatalf("layers %v", names)
		}
		for _, s := range stats[:3] { // pre, relu and pool have the same blank channels
			if s.Blank != len(blank) || math.Abs(s.BlankFraction-float64(len(blank))/6) > 1e-12 {
				t.Errorf("image %d, %s: %d blank (%.3f), want %d: channels %v", n, s.Layer, s.Blank, s.BlankFraction, len(blank), blank)
			}
		}
		fm, _ := acts.Layer("relu")
		chans, _ := fm.ChannelStats(n)
		for c, cs := range chans {
			if got, want := cs.Max <= 0, slices.Contains(blank, c); got != want {
				t.Errorf("image %d channel %d: blank %v, want %v (max %g)", n, c, got, want, cs.Max)
			}
		}
	}
	// Means of "relu" by hand. Image 0: x is 0.5 except one 1.0 (mean 17/32);
	// c0 = x+0.1, c3 = 0.1 at one pixel, c5 = 0.45 at one pixel.
	// Image 1: c0 = 0.3, c4 = 0.1.
	relu := []struct {
		mean float64
		top  []int
	}{
		{(17.0/32 + 0.1 + 0.1/16 + 0.45/16) / 6, []int{0, 5}},
		{(0.3 + 0.1) / 6, []int{0, 4}},
	}
	fm, _ := acts.Layer("relu")
	for n, want := range relu {
		s, err := fm.Stats(n, 2)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Mean-want.mean) > 1e-6 {
			t.Errorf("image %d: relu mean %.6f, want %.6f", n, s.Mean, want.mean)
		}
		top, _ := fm.TopChannels(n, 2)
		if !slices.Equal(top, want.top) {
			t.Errorf("image %d: top-2 channels %v, want %v", n, top, want.top)
		}
		if s.Channels != 6 || s.Height != 4 || s.Width != 4 {
			t.Errorf("image %d: %d channels of %dx%d", n, s.Channels, s.Height, s.Width)
		}
	}
	// The depth summary lists the same numbers, in model order.
	d, err := acts.Depth(1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.Layers) != "[pre relu pool gap]" || d.BlankFraction[1] != 4.0/6 || math.Abs(d.Mean[1]-0.4/6) > 1e-6 {
		t.Errorf("depth %+v", d)
	}
	if !strings.Contains(d.String(), "66.7%") {
		t.Errorf("depth table lacks relu's 66.7%%:\n%s", d)
	}
	chart := display.LayerChart(d.Layers, display.Series{Name: "blank fraction", Values: d.BlankFraction})
	if html, err := chart.HTML(); err != nil || !strings.Contains(html, "blank fraction") {
		t.Errorf("depth chart: %v", err)
	}

	// A grid has a tile per channel; TopTiles has the K most active.
	tiles, err := fm.Tiles(0)
	if err != nil {
		t.Fatal(err)
	}
	g := display.TileGrid(tiles)
	if g.Len() != 6 {
		t.Errorf("grid of 6 channels has %d tiles", g.Len())
	}
	if _, err := g.Image(); err != nil {
		t.Error(err)
	}
	tiles, err = fm.TopTiles(1, 2)
	if err != nil || len(tiles.Maps) != 2 {
		t.Errorf("TopTiles(1, 2): %v tiles, %v", len(tiles.Maps), err)
	}
}

func TestBadInput(t *testing.T) {
	m := blankModel()
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	x := blankInput()
	if _, err := featuremaps.Extract(r, x, "rleu"); err == nil || !strings.Contains(err.Error(), "closest: relu") {
		t.Errorf("unknown layer: %v, want the closest names", err)
	}
	if _, err := featuremaps.Extract(r, x); err == nil {
		t.Error("no layer: no error")
	}
	if _, err := featuremaps.Extract(r, tensors.FromFlatDataAndDimensions(make([]float32, 16), 1, 4, 4, 1), "relu"); err == nil {
		t.Error("NHWC batch for an NCHW model: no error")
	}
	acts, err := featuremaps.Extract(r, x, "relu", "gap")
	if err != nil {
		t.Fatal(err)
	}
	gap, _ := acts.Layer("gap")
	if _, err := gap.Tiles(0); err == nil || !strings.Contains(err.Error(), "no spatial axes") {
		t.Errorf("grid of a vector layer: %v", err)
	}
	if _, err := gap.TopTiles(0, 2); err == nil || !strings.Contains(err.Error(), "no spatial axes") {
		t.Errorf("top grid of a vector layer: %v", err)
	}
	relu, _ := acts.Layer("relu")
	for name, err := range map[string]error{
		"Stats":    second(relu.Stats(2, 0)),
		"Channel":  second(relu.Channel(-1, 0)),
		"Tiles":    second(relu.Tiles(2)),
		"TopTiles": second(relu.TopTiles(5, 1)),
		"Depth":    second(acts.Depth(2)),
		"AllStats": second(acts.Stats(7, 0)),
	} {
		if err == nil || !strings.Contains(err.Error(), "out of range: the batch has 2 image(s)") {
			t.Errorf("%s with a batch index out of range: %v", name, err)
		}
	}
	if _, err := relu.Channel(0, 6); err == nil || !strings.Contains(err.Error(), "has 6 channels") {
		t.Errorf("channel out of range: %v", err)
	}
	if _, err := relu.Tiles(0, 0, 9); err == nil || !strings.Contains(err.Error(), "channel 9 out of range") {
		t.Errorf("grid channel out of range: %v", err)
	}
	if _, err := relu.Stats(0, -1); err == nil {
		t.Error("top -1: no error")
	}
	// A model whose layers are all vectors has nothing for "all".
	flat := models.NewNative("flat", models.Input{Layout: models.NHWC, Channels: 1, Height: 1, Width: 3}, model.NewStore(),
		func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
			return tap("logits", graph.Reshape(x, x.Shape().Dimensions[0], 3))
		})
	if _, err := featuremaps.Select(flat, featuremaps.All); err == nil || !strings.Contains(err.Error(), "no layer with spatial axes") {
		t.Errorf("all on a model without spatial layers: %v", err)
	}
	// A rank-3 layer is neither an image nor a vector.
	odd := models.NewNative("odd", models.Input{Layout: models.NHWC, Channels: 1, Height: 2, Width: 3}, model.NewStore(),
		func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
			tap("rows", graph.Reshape(x, x.Shape().Dimensions[0], 2, 3))
			return graph.Reshape(x, x.Shape().Dimensions[0], 6)
		})
	if _, err := featuremaps.Select(odd, "rows"); err == nil || !strings.Contains(err.Error(), "shape [1 2 3]") {
		t.Errorf("rank-3 layer: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
