package gradcam_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// The methods that run the model many times per image, with few points.
var manyPointMethods = []gradcam.Method{
	gradcam.IntegratedGradientsMethod{Steps: 7, Baseline: 0.1},
	gradcam.SmoothGradMethod{Samples: 5, Sigma: 0.2, Seed: 3},
	gradcam.SmoothGradCAMPlusPlusMethod{Samples: 5, Std: 0.2, Seed: 3},
	gradcam.ScoreCAM,
	gradcam.AblationCAM,
}

// The points per call change how the points are cut into calls of the
// model (one point a call; chunks whose last one overlaps the one before;
// groups of images, the last one smaller; everything in one call), never
// the maps: the same raw maps, to float32 rounding, for every kind of target.
func TestPointsPerCallDoesNotChangeTheMaps(t *testing.T) {
	r, x, man := loadTiny(t)
	layer := man.Layers["layer2"].ONNXOutput // 32 channels
	targets := []gradcam.Target{gradcam.Top(2), gradcam.Class(4, 1, 7),
		gradcam.Score("logit 3 - logit 5", func(l *graph.Node) *graph.Node {
			return graph.Sub(graph.SliceAxis(l, 1, graph.AxisElem(3)), graph.SliceAxis(l, 1, graph.AxisElem(5)))
		})}
	for _, m := range manyPointMethods {
		for _, tg := range targets {
			t.Run(fmt.Sprintf("%s/%s", m.Name(), tg), func(t *testing.T) {
				explain := func(points int) *gradcam.Result {
					t.Helper()
					res, err := gradcam.New(r, layer).Method(m).PointsPerCall(points).Explain(x, tg)
					if err != nil {
						t.Fatalf("%d points per call: %v", points, err)
					}
					return res
				}
				whole := explain(3 * 32) // every point of every image in one call
				// 5: chunks of 5 points, the last one overlapping; 14: 2 images
				// of 7 steps or 5 samples per call, then 1 (14 of the channels
				// for the perturbation methods).
				for _, points := range []int{1, 5, 14} {
					res := explain(points)
					if !slices.Equal(res.Classes, whole.Classes) {
						t.Errorf("%d points per call: classes %v, want %v", points, res.Classes, whole.Classes)
					}
					if e := testutil.RelErr(res.Raw[0].Values, whole.Raw[0].Values); e > 1e-5 {
						t.Errorf("%d points per call: raw maps differ from one call's by %.3g relative", points, e)
					}
					if e := testutil.MaxAbsDiff(res.Normalized, whole.Normalized); e > 1e-5 {
						t.Errorf("%d points per call: normalised maps differ by %.3g", points, e)
					}
				}
			})
		}
	}
}

// batchModel is a small NHWC conv net (5×6×2 inputs, "relu" layer of 4
// channels, 3 classes) that records the batch of every graph built for it
// and, if fixed > 0, takes only that batch (as an ONNX file that fixes it).
type batchModel struct {
	mu   sync.Mutex
	seen []int
}

func (b *batchModel) batches() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.seen)
}

func (b *batchModel) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = nil
}

func (b *batchModel) native(fixed int) *models.Native {
	kernel := make([]float32, 3*3*2*4)
	for i := range kernel {
		kernel[i] = float32((i*7)%11-5) / 10
	}
	forward := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		n := x.Shape().Dimensions[0]
		b.mu.Lock()
		b.seen = append(b.seen, n)
		b.mu.Unlock()
		if fixed > 0 && n != fixed && n != 1 { // 1: Native.Check's shape probe
			panic(fmt.Errorf("batch %d: this model takes %d images at a time", n, fixed))
		}
		k := scope.VariableWithValue("kernel", tensors.FromFlatDataAndDimensions(kernel, 3, 3, 2, 4)).ValueGraph(x)
		a := tap("relu", activation.Relu(graph.Convolve(x, k).PadSame().Done()))
		w := scope.VariableWithValue("dense", modeltest.TinyNativeDense).ValueGraph(x)
		return graph.Dot(graph.ReduceMean(a, 1, 2), w).Product()
	}
	in := models.Input{Layout: models.NHWC, Channels: 2, Height: 5, Width: 6, Batch: fixed}
	return models.NewNative(fmt.Sprintf("batch%d", fixed), in, model.NewStore(), forward)
}

// No call of the model evaluates more than PointsPerCall points: the only
// batches the model's graphs see are the images themselves (the base pass
// and the maps) and the calls of at most that many points.
func TestPointsPerCallBoundsTheBatchOfEveryCall(t *testing.T) {
	var bm batchModel
	r := models.NewRunner(modeltest.Backend(t), bm.native(0))
	r.Model().Layers()
	const n, points = 5, 3
	x := tinyBatch(n, 21)
	for _, m := range manyPointMethods {
		bm.reset()
		cam, err := gradcam.New(r, "relu").Method(m).PointsPerCall(points).Done()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cam.Explain(x, gradcam.Top(1)); err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		seen := bm.batches()
		for _, b := range seen {
			if b != n && b > points {
				t.Errorf("%s: a graph ran %d points at once, more than %d (batches built: %v)", m.Name(), b, points, seen)
				break
			}
		}
		t.Logf("%s: batches %v", m.Name(), seen)
		if !slices.Contains(seen, points) {
			t.Errorf("%s: no call ran %d points (batches built: %v)", m.Name(), points, seen)
		}
	}
}

// A model whose file fixes the batch gets exactly that batch in every call
// (one point of each of its images), and the maps are those of a model that
// takes any batch explaining the same images the same number at a time.
func TestManyPointMethodsOnAFixedBatchModel(t *testing.T) {
	const fixed, n = 2, 4
	var fb, free batchModel
	rFixed := models.NewRunner(modeltest.Backend(t), fb.native(fixed))
	rFree := models.NewRunner(modeltest.Backend(t), free.native(0))
	rFixed.Model().Layers()
	x := tinyBatch(n, 23)
	chunks, err := models.SplitBatch(x, fixed)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range manyPointMethods {
		fb.reset()
		got, err := gradcam.New(rFixed, "relu").Method(m).Explain(x, gradcam.Top(2))
		if err != nil {
			t.Fatalf("%s: %v", m.Name(), err)
		}
		for _, b := range fb.batches() {
			if b != fixed {
				t.Errorf("%s: a graph of the fixed-batch model was built for batch %d (all: %v)", m.Name(), b, fb.batches())
				break
			}
		}
		var want []float32
		for _, c := range chunks {
			res, err := gradcam.New(rFree, "relu").Method(m).Explain(c, gradcam.Top(2))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res.Raw[0].Values...)
		}
		if e := testutil.RelErr(got.Raw[0].Values, want); e > 1e-5 {
			t.Errorf("%s: fixed-batch maps differ from the free model's by %.3g relative", m.Name(), e)
		}
	}
}

func TestPointsPerCallMustBePositive(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	_, err := gradcam.New(r, "relu").Method(gradcam.IntegratedGradients).PointsPerCall(0).Done()
	if err == nil || !strings.Contains(err.Error(), "points per call 0") {
		t.Errorf("PointsPerCall(0): %v", err)
	}
}

// Passes counts every point of a point method, one step included.
func TestPassesOfPointMethods(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	for _, c := range []struct {
		m    gradcam.Method
		want int
	}{
		{gradcam.IntegratedGradientsMethod{Steps: 1}, 3},
		{gradcam.IntegratedGradients, 3 * 32},
		{gradcam.SmoothGrad, 3 * 16},
		{gradcam.SmoothGradCAMPlusPlus, 3 * 4},
		{gradcam.SmoothGradCAMPlusPlusMethod{Samples: 1}, 3},
		{gradcam.Saliency, 0},
	} {
		cam, err := gradcam.New(r, "relu").Method(c.m).Done()
		if err != nil {
			t.Fatal(err)
		}
		if got := cam.Passes(3); got != c.want {
			t.Errorf("%s: Passes(3) = %d, want %d", c.m.Name(), got, c.want)
		}
	}
}
