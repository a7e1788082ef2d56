package gradcam_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// tinyBatch is a random batch for modeltest.TinyNative (NHWC, 5×6×2).
func tinyBatch(n int, seed uint64) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 2))
	data := make([]float32, n*5*6*2)
	for i := range data {
		data[i] = rng.Float32()*2 - 1
	}
	return tensors.FromFlatDataAndDimensions(data, n, 5, 6, 2)
}

// TinyNative's "relu" layer has the input's size, so no resizing happens and
// the options can be checked exactly against the raw map.
func TestReLUAndNormalizeOptions(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tinyBatch(3, 5)
	for _, c := range []struct {
		relu, norm bool
		want       func(raw []float32) []float32
	}{
		{true, false, func(raw []float32) []float32 { return apply(raw, func(v float32) float32 { return max(v, 0) }) }},
		{false, false, func(raw []float32) []float32 { return raw }},
		{false, true, func(raw []float32) []float32 {
			// Divided by the largest magnitude twice (before and after the identity resize).
			out := make([]float32, len(raw))
			for n := range 3 {
				img := raw[n*30 : (n+1)*30]
				var m float32
				for _, v := range img {
					m = max(m, float32(math.Abs(float64(v))))
				}
				for i, v := range img {
					out[n*30+i] = v / (m + 1e-7)
				}
			}
			return out
		}},
	} {
		cam, err := gradcam.New(r, "relu").Method(gradcam.HiResCAM).ReLU(c.relu).Normalize(c.norm).Done()
		if err != nil {
			t.Fatal(err)
		}
		res, err := cam.Explain(x, gradcam.Class(2))
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.RelErr(res.Normalized, c.want(res.Raw[0].Values)); e > 1e-5 {
			t.Errorf("relu=%v normalize=%v: maps differ from the expected ones by %.3g", c.relu, c.norm, e)
		}
	}
}

func apply(v []float32, f func(float32) float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

// TinyNative's logits are linear in the pooled "relu" activation, so
// zeroing channel k lowers logit c by mean_ij(A_k)·W[k][c]: Ablation-CAM's
// weights have a closed form. This also runs the channels-last path of the
// graph surgery and a batch size that does not divide the channel count.
func TestAblationCAMClosedFormOnNativeModel(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tinyBatch(2, 9)
	logits, acts, err := r.Run(x, "relu")
	if err != nil {
		t.Fatal(err)
	}
	a := tensors.MustCopyFlatData[float32](acts[0]) // [N,5,6,4]
	y := tensors.MustCopyFlatData[float32](logits)  // [N,3]
	classes := []int{1, 2}
	var progress []gradcam.Progress
	cam, err := gradcam.New(r, "relu").Method(gradcam.AblationCAM).BatchSize(3).
		Progress(func(p gradcam.Progress) { progress = append(progress, p) }).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Class(classes...))
	if err != nil {
		t.Fatal(err)
	}
	const p, c = 30, 4
	want := make([]float32, 2*p)
	for n := range 2 {
		yc := y[n*3+classes[n]]
		for k := range c {
			var mean float32
			for i := range p {
				mean += a[(n*p+i)*c+k] / p
			}
			w := mean * modeltest.TinyNativeDense[k][classes[n]] / yc
			for i := range p {
				want[n*p+i] += w * a[(n*p+i)*c+k]
			}
		}
	}
	if e := testutil.RelErr(res.Raw[0].Values, want); e > 1e-4 {
		t.Errorf("Ablation-CAM differs from its closed form by %.3g relative", e)
	}
	if len(progress) != 2 || progress[1].Done != 8 || progress[1].Total != 8 || progress[0].Done != 6 {
		t.Errorf("progress reports %+v, want 6 then 8 of 8 passes", progress)
	}
	if cam.Passes(2) != 8 {
		t.Errorf("Passes(2) = %d, want 8", cam.Passes(2))
	}
}

// Score-CAM on the channels-last native model against the same computation
// done on the host with plain forward passes.
func TestScoreCAMOnNativeModelMatchesHostComputation(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tinyBatch(2, 11)
	xs := tensors.MustCopyFlatData[float32](x)
	_, acts, err := r.Run(x, "relu")
	if err != nil {
		t.Fatal(err)
	}
	a := tensors.MustCopyFlatData[float32](acts[0])
	const n, p, c, k = 2, 30, 4, 0
	// Masked inputs: the layer has the input's size, so the upsampling is the identity.
	masked := make([]float32, 0, n*c*p*2)
	for img := range n {
		for ch := range c {
			lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
			for i := range p {
				v := a[(img*p+i)*c+ch]
				lo, hi = min(lo, v), max(hi, v)
			}
			for i := range p {
				m := (a[(img*p+i)*c+ch] - lo) / (hi - lo + 1e-8)
				masked = append(masked, xs[(img*p+i)*2]*m, xs[(img*p+i)*2+1]*m)
			}
		}
	}
	logits, _, err := r.Run(tensors.FromFlatDataAndDimensions(masked, n*c, 5, 6, 2))
	if err != nil {
		t.Fatal(err)
	}
	l := tensors.MustCopyFlatData[float32](logits)
	want := make([]float32, n*p)
	for img := range n {
		var sum float64
		for ch := range c {
			sum += math.Exp(float64(l[(img*c+ch)*3+k]))
		}
		for ch := range c {
			w := float32(math.Exp(float64(l[(img*c+ch)*3+k])) / sum)
			for i := range p {
				want[img*p+i] += w * a[(img*p+i)*c+ch]
			}
		}
	}
	cam, err := gradcam.New(r, "relu").Method(gradcam.ScoreCAM).BatchSize(4).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Class(k))
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.RelErr(res.Raw[0].Values, want); e > 1e-4 {
		t.Errorf("Score-CAM differs from the host computation by %.3g relative", e)
	}
}

// Saliency on the channels-last native model against central finite differences.
func TestSaliencyMatchesFiniteDifferences(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tinyBatch(1, 13)
	xs := tensors.MustCopyFlatData[float32](x)
	const size, class, h = 60, 1, 1e-3
	batch := make([]float32, 0, 2*size*size)
	for i := range size {
		for _, d := range []float32{h, -h} {
			v := append([]float32(nil), xs...)
			v[i] += d
			batch = append(batch, v...)
		}
	}
	logits, _, err := r.Run(tensors.FromFlatDataAndDimensions(batch, 2*size, 5, 6, 2))
	if err != nil {
		t.Fatal(err)
	}
	l := tensors.MustCopyFlatData[float32](logits)
	want := make([]float32, 30)
	for i := range size {
		g := (l[(2*i)*3+class] - l[(2*i+1)*3+class]) / (2 * h)
		want[i/2] = max(want[i/2], float32(math.Abs(float64(g))))
	}
	cam, err := gradcam.New(r).Method(gradcam.Saliency).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Class(class))
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.RelErr(res.Raw[0].Values, want); e > 1e-2 {
		t.Errorf("saliency differs from finite differences by %.3g relative", e)
	}
}

// Integrated Gradients' completeness: the map sums to score(x) − score(baseline).
func TestIntegratedGradientsCompleteness(t *testing.T) {
	r, x, _ := loadTiny(t)
	man := loadMethods(t)
	cam, err := gradcam.New(r).Method(gradcam.IntegratedGradientsMethod{Steps: 64}).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Top(1))
	if err != nil {
		t.Fatal(err)
	}
	raw := res.Raw[0]
	size := raw.Height * raw.Width
	for n := range res.N {
		var sum float64
		for _, v := range raw.Values[n*size : (n+1)*size] {
			sum += float64(v)
		}
		_ = man
		logits, _, err := r.Run(tensors.FromFlatDataAndDimensions(make([]float32, 3*64*64), 1, 3, 64, 64))
		if err != nil {
			t.Fatal(err)
		}
		base := tensors.MustCopyFlatData[float32](logits)[res.Classes[n*res.K]]
		want := float64(res.Scores[n*res.K] - base)
		if math.Abs(sum-want) > 0.02*math.Abs(want) {
			t.Errorf("image %d: IG map sums to %.4f, score − baseline score = %.4f", n, sum, want)
		}
	}
}

// A model with a tapped side branch the logits do not use, and no ReLU.
func sideBranchModel() *models.Native {
	store := model.NewStore()
	fwd := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		k := scope.VariableWithValue("kernel", tensors.FromFlatDataAndDimensions(ramp(3*3*2*4), 3, 3, 2, 4)).ValueGraph(x)
		a := tap("conv", graph.Tanh(graph.Convolve(x, k).PadSame().Done()))
		tap("side", graph.MulScalar(a, 2))
		tap("ints", graph.ConvertDType(a, dtypes.Int32))
		w := scope.VariableWithValue("dense", [][]float32{{1, 0}, {0, 1}, {1, 1}, {-1, 0}}).ValueGraph(x)
		return graph.Dot(graph.ReduceMean(a, 1, 2), w).Product()
	}
	return models.NewNative("side", models.Input{Layout: models.NHWC, Channels: 2, Height: 5, Width: 6}, store, fwd)
}

func TestBadMethodInputs(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), sideBranchModel())
	x := tinyBatch(2, 3)
	for _, c := range []struct {
		method gradcam.Method
		layer  string
		want   string
	}{
		{gradcam.GradCAM, "side", `the logits do not depend on layer "side"`},
		{gradcam.LayerCAM, "side", `the logits do not depend on layer "side"`},
		{gradcam.AblationCAM, "side", `the logits do not depend on layer "side"`},
		{gradcam.GuidedBackprop, "", "guidedbackprop needs ReLUs, and model side has none"},
	} {
		var layers []string
		if c.layer != "" {
			layers = append(layers, c.layer)
		}
		cam, err := gradcam.New(r, layers...).Method(c.method).Done()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cam.Explain(x, gradcam.Class(0)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s at %q: err = %v, want %q", c.method.Name(), c.layer, err, c.want)
		}
	}
	// EigenCAM needs no gradient: the side branch is fine.
	cam, err := gradcam.New(r, "side").Method(gradcam.EigenCAM).Done()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cam.Explain(x, gradcam.Class(0)); err != nil {
		t.Errorf("EigenCAM on a side branch: %v", err)
	}
	if _, err := gradcam.New(r, "ints").Method(gradcam.GradCAM).Done(); err == nil || !strings.Contains(err.Error(), `layer "ints" of model side is Int32, which cannot be differentiated`) {
		t.Errorf("integer layer: %v", err)
	}
	if _, err := gradcam.New(r, "conv").Method(gradcam.ScoreCAM).BatchSize(0).Done(); err == nil || !strings.Contains(err.Error(), "batch size 0") {
		t.Errorf("batch size 0: %v", err)
	}
	if _, err := gradcam.New(r, "conv").Method(nil).Done(); err == nil || !strings.Contains(err.Error(), "known methods: ablationcam") {
		t.Errorf("nil method: %v", err)
	}
	// Without a layer the CAM is computed at the last layer with spatial axes.
	last, err := models.LastSpatialLayer(r.Model())
	if err != nil {
		t.Fatal(err)
	}
	if cam, err := gradcam.New(r).Method(gradcam.GuidedGradCAM).Done(); err != nil || !slices.Equal(cam.Layers(), []string{last.Name}) {
		t.Errorf("Guided Grad-CAM without a layer: %v, want the last spatial layer %s", err, last.Name)
	}
}

// Score-CAM on a layer with many channels: the cost is known before
// anything runs, and the limit is honoured with the estimate in the message.
func TestScoreCAMPassLimit(t *testing.T) {
	r, x, man := loadTiny(t)
	cam, err := gradcam.New(r, man.Layers["layer2"].ONNXOutput).Method(gradcam.ScoreCAM).MaxPasses(50).Done()
	if err != nil {
		t.Fatal(err)
	}
	checkPassLimit(t, cam, x, 96, "scorecam needs 96 forward passes", "(32 channels)", "more than the limit of 50")
}

// checkPassLimit checks that cam counts passes passes for the batch x and
// refuses it with an error that contains each of wants.
func checkPassLimit(t *testing.T, cam *gradcam.CAM, x *tensors.Tensor, passes int, wants ...string) {
	t.Helper()
	if got := cam.Passes(x.Shape().Dimensions[0]); got != passes {
		t.Errorf("Passes = %d, want %d", got, passes)
	}
	_, err := cam.Explain(x, gradcam.Top(1))
	for _, want := range wants {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}

// The EigenCAM sign convention: the projection correlates positively with
// the channel sum of the activation.
func TestEigenCAMSignConvention(t *testing.T) {
	r, x, man := loadTiny(t)
	layer := man.Layers["layer1"].ONNXOutput
	_, acts, err := r.Run(x, layer)
	if err != nil {
		t.Fatal(err)
	}
	a := tensors.MustCopyFlatData[float32](acts[0]) // [3,16,16,16]
	cam, err := gradcam.New(r, layer).Method(gradcam.EigenCAM).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Top(1))
	if err != nil {
		t.Fatal(err)
	}
	const c, p = 16, 256
	for n := range 3 {
		var corr, mean float64
		for i := range p {
			mean += float64(res.Raw[0].Values[n*p+i]) / p
		}
		if math.Abs(mean) > 1e-3 {
			t.Errorf("image %d: projection of centred data has mean %.3g", n, mean)
		}
		for i := range p {
			var s float64
			for k := range c {
				s += float64(a[(n*c+k)*p+i])
			}
			corr += float64(res.Raw[0].Values[n*p+i]) * s
		}
		if corr <= 0 {
			t.Errorf("image %d: projection correlates negatively (%.3g) with the channel sum", n, corr)
		}
	}
}

// The native model's only ReLU feeds the dense layer, whose gradient is the
// constant W[k][c]/(h·w) per channel; guided backpropagation zeroes its
// negative entries, so it equals plain saliency of the model with the dense
// weights relu(W). This checks the ReLU rewiring on a native, channels-last model.
func TestGuidedBackpropClosedFormOnNativeModel(t *testing.T) {
	pos := make([][]float32, len(modeltest.TinyNativeDense))
	for k, row := range modeltest.TinyNativeDense {
		pos[k] = apply(row, func(v float32) float32 { return max(v, 0) })
	}
	x := tinyBatch(2, 21)
	guided, err := gradcam.New(models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())).Method(gradcam.GuidedBackprop).Done()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gradcam.New(models.NewRunner(modeltest.Backend(t), modeltest.TinyNativeWithDense(pos))).Method(gradcam.Saliency).Done()
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []int{0, 1, 2} {
		g, err := guided.Explain(x, gradcam.Class(class))
		if err != nil {
			t.Fatal(err)
		}
		p, err := plain.Explain(x, gradcam.Class(class))
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.RelErr(g.Raw[0].Values, p.Raw[0].Values); e > 1e-5 {
			t.Errorf("class %d: guided backpropagation differs from saliency with relu(W) by %.3g", class, e)
		}
	}
}
