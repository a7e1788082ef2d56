package metrics_test

import (
	"math"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

const side = 16

// inSquare is the evidence region of the evidence model: rows 2..5, columns 9..12.
func inSquare(p int) bool {
	y, x := p/side, p%side
	return y >= 2 && y < 6 && x >= 9 && x < 13
}

// evidenceModel's evidence is known by construction: grey 16×16 images
// (NCHW), feat = relu of (x, −x) stacked as two channels, so channel 0
// is relu(x) and channel 1 relu(−x); logit 0 = 8·mean over the square of
// channel 0 − 4, logit 1 = 0. Only the square's brightness matters.
func evidenceModel() *models.Native {
	store := model.NewStore()
	mask := make([]float32, side*side)
	for p := range mask {
		if inSquare(p) {
			mask[p] = 8.0 / 16
		}
	}
	fwd := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		g := x.Graph()
		feat := tap("feat", activation.Relu(graph.Concatenate([]*graph.Node{x, graph.Neg(x)}, 1)))
		m := graph.Const(g, tensors.FromFlatDataAndDimensions(mask, 1, side, side))
		l0 := graph.AddScalar(graph.ReduceSum(graph.Mul(graph.SliceAxis(feat, 1, graph.AxisElem(0)), graph.ExpandAxes(m, 0)), 1, 2, 3), -4)
		l0 = graph.Reshape(l0, -1, 1)
		return tap("logits", graph.Concatenate([]*graph.Node{l0, graph.ZerosLike(l0)}, 1))
	}
	return models.NewNative("evidence", models.Input{Layout: models.NCHW, Channels: 1, Height: side, Width: side}, store, fwd)
}

// evidenceImages: dark noisy background in [0, 0.2], bright square in [0.8, 1].
func evidenceImages(n int) *tensors.Tensor {
	data := make([]float32, n*side*side)
	for i := range data {
		u := float32(gradcam.Uniform(42, uint64(i)))
		if inSquare(i % (side * side)) {
			data[i] = 0.8 + 0.2*u
		} else {
			data[i] = 0.2 * u
		}
	}
	return tensors.FromFlatDataAndDimensions(data, n, 1, side, side)
}

// exactMaps are the model's evidence: the image inside the square, min-max normalised.
func exactMaps(x *tensors.Tensor) [][]float32 {
	data := tensors.MustCopyFlatData[float32](x)
	n := len(data) / (side * side)
	maps := make([][]float32, n)
	for i := range maps {
		maps[i] = make([]float32, side*side)
		for p := range maps[i] {
			if inSquare(p) {
				maps[i][p] = data[i*side*side+p]
			}
		}
		maps[i] = minMax(maps[i])
	}
	return maps
}

func minMax(v []float32) []float32 {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = (x - lo) / (hi - lo + 1e-7)
	}
	return out
}

func randomMaps(n int) [][]float32 {
	maps, err := metrics.RandomMaps(n, side, side, 7)
	if err != nil {
		panic(err) // The arguments are constants.
	}
	for i := range maps {
		maps[i] = minMax(maps[i])
	}
	return maps
}

func setup(t *testing.T, opt metrics.Options) (*metrics.Evaluator, *models.Runner, *tensors.Tensor) {
	t.Helper()
	r := models.NewRunner(modeltest.Backend(t), evidenceModel())
	e, err := metrics.New(r, opt)
	if err != nil {
		t.Fatal(err)
	}
	return e, r, evidenceImages(4)
}

var zeros = []int{0, 0, 0, 0}

func TestDeletionAndInsertionSeparateEvidenceFromRandom(t *testing.T) {
	e, _, x := setup(t, metrics.Options{Steps: 16, BatchSize: 7})
	exact, random := exactMaps(x), randomMaps(4)
	del, err := e.Deletion(x, exact, zeros)
	if err != nil {
		t.Fatal(err)
	}
	delRand, err := e.Deletion(x, random, zeros)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := e.Insertion(x, exact, zeros)
	if err != nil {
		t.Fatal(err)
	}
	insRand, err := e.Insertion(x, random, zeros)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deletion AUC: evidence %.3f, random %.3f; insertion AUC: evidence %.3f, random %.3f",
		del.MeanAUC, delRand.MeanAUC, ins.MeanAUC, insRand.MeanAUC)
	// The exact map removes the whole square in the first step (16 of 256
	// pixels = 1/16): the score falls from sigmoid(~3.2) to sigmoid(−4).
	for i, s := range del.Scores {
		if s[0] < 0.9 || s[1] > 0.02 {
			t.Errorf("image %d: deletion curve starts %.3f, %.3f; want > 0.9 then < 0.02", i, s[0], s[1])
		}
	}
	if len(del.Fractions) != 17 || del.Fractions[1] != 1.0/16 {
		t.Errorf("fractions %v", del.Fractions)
	}
	if !(del.MeanAUC < 0.1 && delRand.MeanAUC > 0.3) {
		t.Errorf("deletion does not separate the evidence (%.3f) from a random map (%.3f)", del.MeanAUC, delRand.MeanAUC)
	}
	if !(ins.MeanAUC > 0.85 && insRand.MeanAUC < 0.6) {
		t.Errorf("insertion does not separate the evidence (%.3f) from a random map (%.3f)", ins.MeanAUC, insRand.MeanAUC)
	}
}

func TestConfidenceSeparatesEvidenceFromRandom(t *testing.T) {
	e, _, x := setup(t, metrics.Options{})
	exact, err := e.Confidence(x, exactMaps(x), zeros)
	if err != nil {
		t.Fatal(err)
	}
	random, err := e.Confidence(x, randomMaps(4), zeros)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("average drop: evidence %.1f%%, random %.1f%%; increase: %.0f%%, %.0f%%",
		exact.AverageDrop, random.AverageDrop, exact.IncreaseInConfidence, random.IncreaseInConfidence)
	if !(exact.AverageDrop < 10 && random.AverageDrop > 40) {
		t.Errorf("average drop does not separate the evidence (%.1f%%) from a random map (%.1f%%)", exact.AverageDrop, random.AverageDrop)
	}
	// A map of ones keeps the image: no drop, no increase.
	ones := make([][]float32, 4)
	for i := range ones {
		ones[i] = make([]float32, side*side)
		for p := range ones[i] {
			ones[i][p] = 1
		}
	}
	same, err := e.Confidence(x, ones, zeros)
	if err != nil {
		t.Fatal(err)
	}
	if same.AverageDrop != 0 || same.IncreaseInConfidence != 0 {
		t.Errorf("a map of ones drops %.3g%% and increases %.3g%%", same.AverageDrop, same.IncreaseInConfidence)
	}
}

func TestROADSeparatesEvidenceFromRandom(t *testing.T) {
	e, _, x := setup(t, metrics.Options{Percentiles: []float64{10, 30, 50, 70, 90}, Seed: 3})
	exact, err := e.ROAD(x, exactMaps(x), zeros)
	if err != nil {
		t.Fatal(err)
	}
	random, err := e.ROAD(x, randomMaps(4), zeros)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ROAD gap: evidence %.3f, random %.3f; evidence MoRF %v LeRF %v", exact.Gap, random.Gap, exact.MeanMoRF, exact.MeanLeRF)
	// Removing 10% (26 pixels) most relevant first takes the whole square,
	// imputed from the dark background; least relevant first never touches it.
	for pi := range exact.Percentiles {
		if exact.MeanMoRF[pi] > 0.1 || exact.MeanLeRF[pi] < 0.9 {
			t.Errorf("%g%%: MoRF %.3f, LeRF %.3f; want < 0.1 and > 0.9", exact.Percentiles[pi], exact.MeanMoRF[pi], exact.MeanLeRF[pi])
		}
	}
	if !(exact.Gap > 0.8 && math.Abs(random.Gap) < 0.4) {
		t.Errorf("ROAD does not separate the evidence (gap %.3f) from a random map (gap %.3f)", exact.Gap, random.Gap)
	}
	again, err := e.ROAD(x, randomMaps(4), zeros)
	if err != nil {
		t.Fatal(err)
	}
	if again.Gap != random.Gap {
		t.Errorf("ROAD is not deterministic: %v then %v", random.Gap, again.Gap)
	}
}

// The metrics on maps that gradcam computes: HiResCAM at the full-resolution
// layer is exactly the evidence, Grad-CAM is the channel-weighted activation.
func TestMetricsRankHiResCAMAboveRandom(t *testing.T) {
	e, r, x := setup(t, metrics.Options{Steps: 16})
	cam, err := gradcam.New(r, "feat").Method(gradcam.HiResCAM).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Class(0))
	if err != nil {
		t.Fatal(err)
	}
	maps, classes, err := metrics.FromResult(res, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.MaxAbsDiff(flat(maps), flat(exactMaps(x))); e > 1e-3 {
		t.Errorf("HiResCAM differs from the evidence by %.3g", e)
	}
	del, err := e.Deletion(x, maps, classes)
	if err != nil {
		t.Fatal(err)
	}
	delRand, err := e.Deletion(x, randomMaps(4), classes)
	if err != nil {
		t.Fatal(err)
	}
	if del.MeanAUC > delRand.MeanAUC/3 {
		t.Errorf("deletion AUC of HiResCAM %.3f is not well below a random map's %.3f", del.MeanAUC, delRand.MeanAUC)
	}
}

func flat(maps [][]float32) []float32 {
	var out []float32
	for _, m := range maps {
		out = append(out, m...)
	}
	return out
}

func TestRandomizationSanityCheck(t *testing.T) {
	m, err := models.LoadONNX(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	data, shape := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "input.npy"))
	x := tensors.FromFlatDataAndDimensions(data, shape...)
	before, _, err := r.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	layer := "/layer2/layer2.0/relu_1/Relu_output_0"
	gradCAM := func(rr *models.Runner) ([][]float32, error) {
		cam, err := gradcam.New(rr, layer).Done()
		if err != nil {
			return nil, err
		}
		res, err := cam.Explain(x, gradcam.Top(1))
		if err != nil {
			return nil, err
		}
		maps, _, err := metrics.FromResult(res, 0)
		return maps, err
	}
	sim, err := metrics.Randomization(r, 1, gradCAM)
	if err != nil {
		t.Fatal(err)
	}
	// A "method" that ignores the model: the image's first channel.
	imageOnly := func(*models.Runner) ([][]float32, error) {
		var maps [][]float32
		for n := range 3 {
			maps = append(maps, data[n*3*64*64:n*3*64*64+64*64])
		}
		return maps, nil
	}
	same, err := metrics.Randomization(r, 1, imageOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Spearman similarity after randomisation: Grad-CAM %.3f %v, image-only %.3f", sim.Mean, sim.Spearman, same.Mean)
	if same.Mean != 1 {
		t.Errorf("a model-independent map has similarity %.3f, want 1", same.Mean)
	}
	if sim.Mean > 0.5 {
		t.Errorf("Grad-CAM's maps stay similar (%.3f) after randomising the weights", sim.Mean)
	}
	after, _, err := r.Run(x)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.MaxAbsDiff(tensors.MustCopyFlatData[float32](before), tensors.MustCopyFlatData[float32](after)); e != 0 {
		t.Errorf("randomising a copy changed the original model's logits by %.3g", e)
	}
	rm, err := metrics.Randomize(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	rl, _, err := models.NewRunner(modeltest.Backend(t), rm).Run(x)
	if err != nil {
		t.Fatal(err)
	}
	if e := testutil.MaxAbsDiff(tensors.MustCopyFlatData[float32](before), tensors.MustCopyFlatData[float32](rl)); e < 1e-2 {
		t.Errorf("the randomised model's logits differ by only %.3g", e)
	}
}

func TestSpearman(t *testing.T) {
	for _, c := range []struct {
		a, b []float32
		want float64
	}{
		{[]float32{1, 2, 3, 4}, []float32{10, 20, 30, 40}, 1},
		{[]float32{1, 2, 3, 4}, []float32{4, 3, 2, 1}, -1},
		{[]float32{1, 1, 2, 3}, []float32{1, 1, 2, 3}, 1},
		{[]float32{0, 0, 0}, []float32{0, 0, 0}, 1},
		{[]float32{0, 0, 0}, []float32{1, 2, 3}, 0},
		// Ranks (1.5, 1.5, 3) and (1, 2, 3): 1.5/sqrt(1.5·2) = 0.866.
		{[]float32{5, 5, 7}, []float32{1, 2, 3}, math.Sqrt(3) / 2},
	} {
		if got, err := metrics.Spearman(c.a, c.b); err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Spearman(%v, %v) = %v, %v; want %v", c.a, c.b, got, err, c.want)
		}
	}
}

func TestBadMetricInputs(t *testing.T) {
	e, r, x := setup(t, metrics.Options{})
	maps := exactMaps(x)
	nan := exactMaps(x)
	nan[2][5] = float32(math.NaN())
	for _, c := range []struct {
		maps    [][]float32
		classes []int
		want    string
	}{
		{maps[:3], zeros, "3 maps for 4 images"},
		{maps, zeros[:2], "2 classes for 4 images"},
		{[][]float32{maps[0][:10], maps[1], maps[2], maps[3]}, zeros, "map 0 has 10 values; the model's input is 16x16"},
		{maps, []int{0, 2, 0, 0}, "class 2 of image 1 is out of range: the model has 2 classes"},
		{nan, zeros, "map 2 contains NaN"},
	} {
		for name, run := range map[string]func() error{
			"deletion":   func() error { _, err := e.Deletion(x, c.maps, c.classes); return err },
			"insertion":  func() error { _, err := e.Insertion(x, c.maps, c.classes); return err },
			"confidence": func() error { _, err := e.Confidence(x, c.maps, c.classes); return err },
			"road":       func() error { _, err := e.ROAD(x, c.maps, c.classes); return err },
		} {
			if err := run(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: err = %v, want %q", name, err, c.want)
			}
		}
	}
	if _, err := e.Deletion(tensors.FromFlatDataAndDimensions(make([]float32, 2*3*4), 2, 3, 4), maps, zeros); err == nil || !strings.Contains(err.Error(), "the model takes a batch shaped") {
		t.Errorf("wrong input shape: %v", err)
	}
	for opt, want := range map[*metrics.Options]string{
		{BatchSize: -1}:                 "batch size -1",
		{Steps: -2}:                     "-2 steps",
		{Percentiles: []float64{0, 50}}: "ROAD percentile 0",
		{Percentiles: []float64{100}}:   "ROAD percentile 100",
		{NoiseStd: -1}:                  "noise standard deviation -1",
	} {
		if _, err := metrics.New(r, *opt); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("options %+v: err = %v, want %q", *opt, err, want)
		}
	}
}

func TestProgressReportsEveryImage(t *testing.T) {
	var last metrics.Progress
	calls := 0
	e, _, x := setup(t, metrics.Options{Steps: 4, BatchSize: 6, Progress: func(p metrics.Progress) { last = p; calls++ }})
	if _, err := e.Deletion(x, exactMaps(x), zeros); err != nil {
		t.Fatal(err)
	}
	// 4 images × 5 points = 20 perturbed images in batches of 6: 4 calls.
	if calls != 4 || last.Done != 20 || last.Total != 20 || last.Metric != "deletion" {
		t.Errorf("%d calls, last %+v; want 4 calls ending at 20 of 20", calls, last)
	}
}
