package gradcam_test

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// targetsManifest is testdata/targets/manifest.json, written by scripts/reference/gen_targets.py.
type targetsManifest struct {
	Binary, Embed, Segment struct {
		Model, Layer, Region string
		Z                    []float32
		Reference            []float32
		Targets              []struct {
			Target, Raw, Normalised string
			Scores                  []float32
			Classes                 []int
		}
	}
}

func loadTargets(t *testing.T) (targetsManifest, *tensors.Tensor) {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("targets", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man targetsManifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	data, shape := testutil.ReadNPY(t, testutil.Testdata("targets", "input.npy"))
	return man, tensors.FromFlatDataAndDimensions(data, shape...)
}

func targetRunner(t *testing.T, file string) *models.Runner {
	t.Helper()
	m, err := models.LoadONNX(testutil.Testdata("targets", file))
	if err != nil {
		t.Fatal(err)
	}
	return models.NewRunner(modeltest.Backend(t), m)
}

// checkTarget explains x for target and compares the maps, classes and
// scores with the PyTorch reference named want.
func checkTarget(t *testing.T, r *models.Runner, layer string, x *tensors.Tensor, target gradcam.Target, want string,
	refs []struct {
		Target, Raw, Normalised string
		Scores                  []float32
		Classes                 []int
	}) *gradcam.Result {
	t.Helper()
	for _, ref := range refs {
		if ref.Target != want {
			continue
		}
		res, err := gradcam.New(r, layer).Explain(x, target)
		if err != nil {
			t.Fatal(err)
		}
		wantRaw, _ := testutil.ReadNPY(t, testutil.Testdata("targets", ref.Raw))
		wantNorm, _ := testutil.ReadNPY(t, testutil.Testdata("targets", ref.Normalised))
		eRaw, eNorm := testutil.RelErr(res.Raw[0].Values, wantRaw), testutil.MaxAbsDiff(res.Normalized, wantNorm)
		t.Logf("%s: raw rel err %.2g, normalised max abs err %.2g", want, eRaw, eNorm)
		if eRaw > 1e-4 {
			t.Errorf("%s: raw map relative error %.3g > 1e-4", want, eRaw)
		}
		if eNorm > 1e-3 {
			t.Errorf("%s: normalised map max abs error %.3g > 1e-3", want, eNorm)
		}
		if e := testutil.RelErr(res.Scores, ref.Scores); e > 1e-4 {
			t.Errorf("%s: scores %v, PyTorch's %v", want, res.Scores, ref.Scores)
		}
		if ref.Classes != nil && !slices.Equal(res.Classes, ref.Classes) {
			t.Errorf("%s: classes %v, want %v", want, res.Classes, ref.Classes)
		}
		return res
	}
	t.Fatalf("no reference %s", want)
	return nil
}

// A one-output (sigmoid) classifier has two decisions: Top(1) explains the
// one the model made, Class(0) and Class(1) either, Output(0) the logit
// itself, and Counterfactual the evidence against the decision; each equal
// to PyTorch's Grad-CAM of that score (z, −z, ...).
func TestBinaryClassifierTargetsMatchPyTorch(t *testing.T) {
	man, x := loadTargets(t)
	r := targetRunner(t, man.Binary.Model)
	refs := man.Binary.Targets
	top := checkTarget(t, r, man.Binary.Layer, x, gradcam.Top(1), "binary_top1", refs)
	checkTarget(t, r, man.Binary.Layer, x, gradcam.Class(0), "binary_class0", refs)
	pos := checkTarget(t, r, man.Binary.Layer, x, gradcam.Class(1), "binary_class1", refs)
	checkTarget(t, r, man.Binary.Layer, x, gradcam.Output(0), "binary_output0", refs)
	checkTarget(t, r, man.Binary.Layer, x, gradcam.Counterfactual(gradcam.Top(1)), "binary_counterfactual_top1", refs)

	// The decisions and their probabilities, from z alone: σ(z) for the
	// positive decision.
	for n, z := range man.Binary.Z {
		c, logit, err := top.Predicted(n)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[z > 0]; c != want || math.Abs(float64(logit)-math.Abs(float64(z))) > 1e-4 {
			t.Errorf("image %d (z=%.4f): predicted class %d with logit %.4f, want %d with %.4f", n, z, c, logit, want, math.Abs(float64(z)))
		}
		p, err := pos.Probabilities(n)
		if err != nil {
			t.Fatal(err)
		}
		if sig := 1 / (1 + math.Exp(-float64(z))); len(p) != 2 || math.Abs(p[1]-sig) > 1e-5 || math.Abs(p[0]+p[1]-1) > 1e-12 {
			t.Errorf("image %d: probabilities %v, want (%.6f, %.6f)", n, p, 1-sig, sig)
		}
	}
	// Only two decisions.
	if _, err := gradcam.New(r, man.Binary.Layer).Explain(x, gradcam.Class(2)); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("class 2 of a one-output model: %v", err)
	}
	if _, err := gradcam.New(r, man.Binary.Layer).Explain(x, gradcam.Output(1)); err == nil || !strings.Contains(err.Error(), "output index 1") {
		t.Errorf("output 1 of a one-output model: %v", err)
	}
}

// Counterfactual negates the score, so a gradient map of the evidence
// against a class is exactly the negated map of the evidence for it (the
// gradient is linear in the score), for every gradient method.
func TestCounterfactualNegatesTheSignedMap(t *testing.T) {
	r, x, _ := loadTiny(t)
	for _, m := range []gradcam.Method{gradcam.GradCAM, gradcam.HiResCAM, gradcam.XGradCAM} {
		cam, err := gradcam.New(r).Method(m).ReLU(false).Normalize(false).Done()
		if err != nil {
			t.Fatal(err)
		}
		for_, err := cam.Explain(x, gradcam.Class(4))
		if err != nil {
			t.Fatal(err)
		}
		against, err := cam.Explain(x, gradcam.Counterfactual(gradcam.Class(4)))
		if err != nil {
			t.Fatal(err)
		}
		neg := make([]float32, len(for_.Raw[0].Values))
		for i, v := range for_.Raw[0].Values {
			neg[i] = -v
		}
		if e := testutil.RelErr(against.Raw[0].Values, neg); e > 1e-6 {
			t.Errorf("%s: the counterfactual map differs from the negated map by %.3g", m.Name(), e)
		}
		for i, s := range for_.Scores {
			if against.Scores[i] != -s {
				t.Fatalf("%s: counterfactual score %v, want %v", m.Name(), against.Scores[i], -s)
			}
		}
	}
	// Twice is the target itself.
	if got := gradcam.Counterfactual(gradcam.Counterfactual(gradcam.Top(1))).String(); got != "top-1" {
		t.Errorf("Counterfactual twice: %q", got)
	}
}

// An embedding model: the cosine similarity to a reference embedding,
// against PyTorch's cosine_similarity.
func TestSimilarityTargetMatchesPyTorch(t *testing.T) {
	man, x := loadTargets(t)
	r := targetRunner(t, man.Embed.Model)
	res := checkTarget(t, r, man.Embed.Layer, x, gradcam.Similarity(man.Embed.Reference), "embed_similarity", man.Embed.Targets)
	for _, c := range res.Classes {
		if c != -1 {
			t.Errorf("a similarity explains no class, got class %d", c)
		}
	}
	for _, tc := range []struct {
		ref  []float32
		want string
	}{
		{man.Embed.Reference[:3], "has 3 values, but the model outputs 5"},
		{make([]float32, 5), "empty or zero"},
		{nil, "empty or zero"},
		{[]float32{1, float32(math.NaN()), 0, 0, 0}, "value 1 of the reference embedding is NaN"},
	} {
		_, err := gradcam.New(r, man.Embed.Layer).Explain(x, gradcam.Similarity(tc.ref))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("reference %v: error %v, want one that says %q", tc.ref, err, tc.want)
		}
	}
}

// A segmentation model: a class's output summed over a region given, or
// over where the model predicts the class, as pytorch-grad-cam's
// SemanticSegmentationTarget.
func TestSegmentTargetMatchesPyTorch(t *testing.T) {
	man, x := loadTargets(t)
	r := targetRunner(t, man.Segment.Model)
	values, shape := testutil.ReadNPY(t, testutil.Testdata("targets", man.Segment.Region))
	region := heatmap.Map{Width: shape[1], Height: shape[0], Values: values}
	res := checkTarget(t, r, man.Segment.Layer, x, gradcam.Segment(2, region), "segment_region", man.Segment.Targets)
	if res.NumClasses != 4 {
		t.Errorf("NumClasses %d, want the 4 classes of the output", res.NumClasses)
	}
	for n := range res.N { // Logits are the classes' sums over the region: class 2's is the score.
		if got, want := res.Logits[n*res.NumClasses+2], res.Scores[n]; math.Abs(float64(got-want)) > 1e-5*math.Abs(float64(want))+1e-6 {
			t.Errorf("image %d: class 2's region sum %v, score %v", n, got, want)
		}
	}
	checkTarget(t, r, man.Segment.Layer, x, gradcam.Segment(1, heatmap.Map{}), "segment_predicted", man.Segment.Targets)

	// Without a layer, the default is not the output itself.
	cam, err := gradcam.New(r).Done()
	if err != nil {
		t.Fatal(err)
	}
	if l := cam.Layers()[0]; l == "logits" {
		t.Errorf("the default layer of a segmentation model is its output %q", l)
	}
	for _, tc := range []struct {
		target gradcam.Target
		want   string
	}{
		{gradcam.Segment(2, heatmap.Map{Width: 8, Height: 8, Values: make([]float32, 64)}), "the region is 8×8, the model's output 16×16"},
		{gradcam.Segment(4, region), "class index 4 is out of range"},
		{gradcam.Segment(0, heatmap.Map{Width: 16, Height: 16}), "has 0 values"},
		{gradcam.Top(1), "a Segment target"},
	} {
		if _, err := gradcam.New(r, man.Segment.Layer).Explain(x, tc.target); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one that says %q", tc.target, err, tc.want)
		}
	}
	// Mirrored copies would explain another region.
	if _, err := gradcam.New(r, man.Segment.Layer).AugSmooth(true).Explain(x, gradcam.Segment(2, region)); err == nil || !strings.Contains(err.Error(), "give a zero region") {
		t.Errorf("AugSmooth with a Segment region: %v", err)
	}
	// A classifier's output is not a segmentation's.
	rt, xt, _ := loadTiny(t)
	if _, err := gradcam.New(rt).Explain(xt, gradcam.Segment(0, heatmap.Map{})); err == nil || !strings.Contains(err.Error(), "not a segmentation") {
		t.Errorf("Segment on a classifier: %v", err)
	}
}
