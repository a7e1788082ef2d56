package gradcam_test

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// smoothRef is one reference of testdata/methods/smoothcams.json.
type smoothRef struct {
	Method, Layer, Target string
	Classes               []int
	Options               struct {
		Samples int
		Std     float64
		Seed    uint64
		Kernel  string
		Gamma   float64
	}
	EigenSmooth bool                  `json:"eigen_smooth"`
	Eigenvalues [][]float64           `json:"eigenvalues_largest_smallest"`
	Activation  struct{ File string } `json:"activation"`
	Raw         struct{ File string }
	Normalised  *struct{ File string }
}

// smoothManifest is testdata/methods/smoothcams.json, written by
// scripts/reference/gen_smoothcams.py.
type smoothManifest struct {
	Layers          map[string]string
	SmoothGradCAMPP []smoothRef `json:"smoothgradcam++"`
	KPCACAM         []smoothRef `json:"kpcacam"`
	KPCANonPSD      smoothRef   `json:"kpcacam_nonpsd"`
	EigenSmooth     []smoothRef `json:"eigen_smooth"`
	AugSmooth       []smoothRef `json:"aug_smooth"`
}

func loadSmooth(t *testing.T) smoothManifest {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("methods", "smoothcams.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man smoothManifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	return man
}

// Smooth Grad-CAM++, KPCA-CAM, EigenSmooth and AugSmooth against their
// independent PyTorch/NumPy implementations: raw maps to 1e-4 relative,
// normalised maps to 1e-3 absolute.
func TestSmoothCAMsMatchPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	man := loadSmooth(t)
	type kase struct {
		name       string
		ref        smoothRef
		m          gradcam.Method
		eigen, aug bool
		points     int
	}
	var cases []kase
	for _, ref := range man.SmoothGradCAMPP {
		m := gradcam.SmoothGradCAMPlusPlusMethod{Samples: ref.Options.Samples, Std: ref.Options.Std, Seed: ref.Options.Seed}
		cases = append(cases, kase{"smoothgradcam++", ref, m, ref.EigenSmooth, false, 3})
	}
	for _, ref := range man.KPCACAM {
		cases = append(cases, kase{"kpcacam/" + ref.Options.Kernel, ref, gradcam.KPCACAMMethod{Kernel: ref.Options.Kernel, Gamma: ref.Options.Gamma}, false, false, 1})
	}
	for _, ref := range man.EigenSmooth {
		m, err := gradcam.MethodByName(ref.Method)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, kase{"eigen_smooth/" + ref.Method, ref, m, true, false, 16})
	}
	for _, ref := range man.AugSmooth {
		m, err := gradcam.MethodByName(ref.Method)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, kase{"aug_smooth/" + ref.Method, ref, m, false, true, 1})
	}
	if len(cases) < 15 {
		t.Fatalf("only %d references", len(cases))
	}
	for _, c := range cases {
		name := c.name + "/" + c.ref.Layer + "/" + c.ref.Target
		if c.eigen {
			name += "/eigen"
		}
		t.Run(name, func(t *testing.T) {
			res, err := gradcam.New(r, man.Layers[c.ref.Layer]).Method(c.m).EigenSmooth(c.eigen).AugSmooth(c.aug).
				PointsPerCall(c.points).Explain(x, methodTarget(c.ref.Target, c.ref.Classes))
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Classes; !slices.Equal(got, c.ref.Classes) {
				t.Errorf("classes %v, want %v", got, c.ref.Classes)
			}
			compareWithReference(t, res, c.ref.Raw.File, c.ref.Normalised)
		})
	}
}

// identityModel is a native model whose layer "act" is its input, NCHW
// [N,c,h,w], and whose logits are the channel means times a fixed matrix:
// a layer activation chosen by the test.
func identityModel(c, h, w int) *models.Native {
	dense := make([][]float32, c)
	for k := range dense {
		dense[k] = []float32{1, float32(k%3) - 1}
	}
	forward := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		a := tap("act", graph.MulScalar(x, 1))
		d := scope.VariableWithValue("dense", dense).ValueGraph(x)
		return graph.Dot(graph.ReduceMean(a, 2, 3), d).Product()
	}
	return models.NewNative("identity", models.Input{Layout: models.NCHW, Channels: c, Height: h, Width: w}, model.NewStore(), forward)
}

// A sigmoid kernel matrix whose negative eigenvalue outweighs its largest
// one: power iteration on it alone finds the eigenvector of the negative
// one; KPCA-CAM's component is that of the largest.
func TestKPCACAMNonPSDKernel(t *testing.T) {
	ref := loadSmooth(t).KPCANonPSD
	if e := ref.Eigenvalues[0]; !(-e[1] > e[0] && e[0] > 0) {
		t.Fatalf("eigenvalues %v: the case does not have |smallest| > largest > 0", e)
	}
	act, shape := testutil.ReadNPY(t, testutil.Testdata("methods", ref.Activation.File))
	r := modeltest.Runner(t, identityModel(shape[1], shape[2], shape[3]))
	res, err := gradcam.New(r, "act").Method(gradcam.KPCACAM).Explain(tensors.FromFlatDataAndDimensions(act, shape...), gradcam.Class(0))
	if err != nil {
		t.Fatal(err)
	}
	compareWithReference(t, res, ref.Raw.File, nil)
	// The component's squared norm is the largest eigenvalue.
	var sq float64
	for _, v := range res.Raw[0].Values {
		sq += float64(v) * float64(v)
	}
	if want := ref.Eigenvalues[0][0]; math.Abs(sq-want) > 1e-4*want {
		t.Errorf("‖map‖² = %.6g, want the largest eigenvalue %.6g", sq, want)
	}
}

// With a linear kernel, kernel PCA is PCA: KPCA-CAM's map is EigenCAM's,
// sign and scale (σ₁u₁ = v·sqrt(λ₁)) included.
func TestKPCACAMLinearKernelIsEigenCAM(t *testing.T) {
	r, x, man := loadTiny(t)
	for _, layer := range []string{"layer1", "layer2"} {
		l := man.Layers[layer].ONNXOutput
		kpca, err := gradcam.New(r, l).Method(gradcam.KPCACAMMethod{Kernel: "linear"}).Explain(x, gradcam.Top(1))
		if err != nil {
			t.Fatal(err)
		}
		eigen, err := gradcam.New(r, l).Method(gradcam.EigenCAM).Explain(x, gradcam.Top(1))
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.RelErr(kpca.Raw[0].Values, eigen.Raw[0].Values); e > 1e-4 {
			t.Errorf("%s: linear KPCA-CAM differs from EigenCAM by %.3g relative", layer, e)
		}
	}
}

// One noise-free copy is Grad-CAM++; the noise is reproducible from the
// seed, and another seed gives another map (at layer1: at layer2 the head
// is linear, so the gradient is the same at every copy).
func TestSmoothGradCAMPlusPlusSingleCopyAndSeed(t *testing.T) {
	r, x, man := loadTiny(t)
	l := man.Layers["layer1"].ONNXOutput
	explain := func(m gradcam.Method) []float32 {
		t.Helper()
		res, err := gradcam.New(r, l).Method(m).Explain(x, gradcam.Top(1))
		if err != nil {
			t.Fatal(err)
		}
		return res.Raw[0].Values
	}
	if e := testutil.RelErr(explain(gradcam.SmoothGradCAMPlusPlusMethod{Samples: 1}), explain(gradcam.GradCAMPlusPlus)); e > 1e-5 {
		t.Errorf("one noise-free copy differs from Grad-CAM++ by %.3g relative", e)
	}
	a := explain(gradcam.SmoothGradCAMPlusPlusMethod{Samples: 3, Std: 0.3, Seed: 9})
	b := explain(gradcam.SmoothGradCAMPlusPlusMethod{Samples: 3, Std: 0.3, Seed: 9})
	c := explain(gradcam.SmoothGradCAMPlusPlusMethod{Samples: 3, Std: 0.3, Seed: 10})
	if e := testutil.RelErr(a, b); e != 0 {
		t.Errorf("the same seed gave maps %.3g apart", e)
	}
	if e := testutil.RelErr(a, c); e < 1e-3 {
		t.Errorf("seeds 9 and 10 gave maps only %.3g apart", e)
	}
}

// Smooth Grad-CAM++ costs one pass per copy, counted by Passes and bounded by MaxPasses.
func TestSmoothGradCAMPlusPlusPasses(t *testing.T) {
	r, x, man := loadTiny(t)
	l := man.Layers["layer2"].ONNXOutput
	m := gradcam.SmoothGradCAMPlusPlusMethod{Samples: 6, Std: 0.1}
	cam, err := gradcam.New(r, l).Method(m).MaxPasses(17).Done()
	if err != nil {
		t.Fatal(err)
	}
	checkPassLimit(t, cam, x, 3*6, "smoothgradcam++ needs 18 forward passes", "(6 points of each image)", "more than the limit of 17")
	aug, err := gradcam.New(r, l).Method(m).AugSmooth(true).Done()
	if err != nil {
		t.Fatal(err)
	}
	if got := aug.Passes(3); got != 6*(18+3)-3 {
		t.Errorf("AugSmooth: Passes(3) = %d, want 6 copies × (18 + 3) − 3 = %d", got, 6*21-3)
	}
	plain, err := gradcam.New(r, l).AugSmooth(true).Done()
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Passes(3); got != 15 {
		t.Errorf("Grad-CAM with AugSmooth: Passes(3) = %d, want 5 more copies × 3 images = 15", got)
	}
}

// EigenSmooth needs per-channel terms; the methods without them are refused
// by Done, with the reason.
func TestEigenSmoothRefusedWithoutTerms(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	for _, m := range []gradcam.Method{gradcam.Saliency, gradcam.SmoothGrad, gradcam.IntegratedGradients, gradcam.GuidedBackprop,
		gradcam.GuidedGradCAM, gradcam.Occlusion, gradcam.RISE, gradcam.FullGrad, gradcam.EigenCAM, gradcam.EigenGradCAM, gradcam.KPCACAM} {
		_, err := gradcam.New(r, "relu").Method(m).EigenSmooth(true).Done()
		if err == nil || !strings.Contains(err.Error(), "EigenSmooth") || !strings.Contains(err.Error(), m.Name()+" has none") {
			t.Errorf("%s with EigenSmooth: err = %v, want EigenSmooth's refusal naming it", m.Name(), err)
		}
	}
	for _, m := range []gradcam.Method{gradcam.GradCAM, gradcam.HiResCAM, gradcam.LayerCAM, gradcam.XGradCAM, gradcam.GradCAMElementwise,
		gradcam.GradCAMPlusPlus, gradcam.ScoreCAM, gradcam.AblationCAM, gradcam.FinerCAM, gradcam.SmoothGradCAMPlusPlus} {
		if _, err := gradcam.New(r, "relu").Method(m).EigenSmooth(true).Explain(tinyBatch(2, 4), gradcam.Class(1)); err != nil {
			t.Errorf("%s with EigenSmooth: %v", m.Name(), err)
		}
	}
}

// AugSmooth's copies are symmetric under mirroring: the maps of the
// mirrored image are the mirrored maps, normalised and raw, for a layer
// method and for an input method, with the class fixed. Without AugSmooth
// they are not (the layers' grid is not mirror-symmetric), so the test
// tells a right mirroring back from none.
func TestAugSmoothOfMirroredImageIsMirrored(t *testing.T) {
	r, x, man := loadTiny(t)
	l := man.Layers["layer2_conv2"].ONNXOutput
	data := tensors.MustCopyFlatData[float32](x)
	dims := x.Shape().Dimensions
	mirrored := make([]float32, len(data))
	w := dims[3]
	for i := range data {
		mirrored[i] = data[i-i%w+w-1-i%w]
	}
	xm := tensors.FromFlatDataAndDimensions(mirrored, dims...)
	target := gradcam.Class(9, 2, 5)
	for _, c := range []struct {
		m     gradcam.Method
		layer string
	}{{gradcam.GradCAM, l}, {gradcam.Saliency, ""}} {
		var layers []string
		if c.layer != "" {
			layers = append(layers, c.layer)
		}
		diff := func(aug bool) (norm, raw float64) {
			t.Helper()
			cam, err := gradcam.New(r, layers...).Method(c.m).AugSmooth(aug).Done()
			if err != nil {
				t.Fatal(err)
			}
			a, err := cam.Explain(x, target)
			if err != nil {
				t.Fatal(err)
			}
			b, err := cam.Explain(xm, target)
			if err != nil {
				t.Fatal(err)
			}
			return testutil.MaxAbsDiff(mirror(b.Normalized, b.Width), a.Normalized),
				testutil.RelErr(mirror(b.Raw[0].Values, b.Raw[0].Width), a.Raw[0].Values)
		}
		norm, raw := diff(true)
		if norm > 1e-5 || raw > 1e-5 {
			t.Errorf("%s, AugSmooth: the mirrored image's maps differ from the mirrored maps by %.3g (normalised), %.3g (raw, relative)", c.m.Name(), norm, raw)
		}
		if norm, raw := diff(false); norm < 1e-2 || raw < 1e-2 {
			t.Errorf("%s without AugSmooth: the mirrored image's maps are the mirrored maps (%.3g, %.3g): the test cannot tell", c.m.Name(), norm, raw)
		}
	}
}

func mirror(v []float32, width int) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i-i%width+width-1-i%width]
	}
	return out
}

// AugSmooth fixes the classes from the image itself: Top(1) explains the
// image's best class in every copy, and the scores and logits are the image's.
func TestAugSmoothKeepsTheImagesClasses(t *testing.T) {
	r, x, man := loadTiny(t)
	l := man.Layers["layer2"].ONNXOutput
	plain, err := gradcam.New(r, l).Explain(x, gradcam.Top(2))
	if err != nil {
		t.Fatal(err)
	}
	aug, err := gradcam.New(r, l).AugSmooth(true).Explain(x, gradcam.Top(2))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(aug.Classes, plain.Classes) || testutil.RelErr(aug.Scores, plain.Scores) != 0 || testutil.RelErr(aug.Logits, plain.Logits) != 0 {
		t.Errorf("AugSmooth: classes %v scores %v, want the image's %v %v", aug.Classes, aug.Scores, plain.Classes, plain.Scores)
	}
	// The second class's map is that of the second class asked for alone.
	second := make([]int, plain.N)
	for n := range second {
		second[n] = plain.Classes[n*2+1]
	}
	alone, err := gradcam.New(r, l).AugSmooth(true).Explain(x, gradcam.Class(second...))
	if err != nil {
		t.Fatal(err)
	}
	size := aug.Raw[0].Height * aug.Raw[0].Width
	var got []float32
	for n := range aug.N {
		got = append(got, aug.Raw[0].Values[(n*2+1)*size:(n*2+2)*size]...)
	}
	if e := testutil.RelErr(got, alone.Raw[0].Values); e > 1e-5 {
		t.Errorf("AugSmooth, Top(2): the second class's raw map differs from its own by %.3g", e)
	}
}

// Bad parameters of the new methods are errors from Done, naming them.
func TestSmoothCAMsBadParameters(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	for _, c := range []struct {
		m    gradcam.Method
		want string
	}{
		{gradcam.SmoothGradCAMPlusPlusMethod{Samples: 0, Std: 0.3}, "smoothgradcam++: 0 samples"},
		{gradcam.SmoothGradCAMPlusPlusMethod{Samples: -2, Std: 0.3}, "smoothgradcam++: -2 samples"},
		{gradcam.SmoothGradCAMPlusPlusMethod{Samples: 2, Std: -1}, "noise std -1"},
		{gradcam.SmoothGradCAMPlusPlusMethod{Samples: 2, Std: math.NaN()}, "noise std NaN"},
		{gradcam.KPCACAMMethod{Kernel: "laplacian"}, `unknown kernel "laplacian"; known kernels: [sigmoid rbf poly cosine linear]`},
		{gradcam.KPCACAMMethod{Gamma: -0.5}, "gamma -0.5"},
		{gradcam.KPCACAMMethod{Kernel: "rbf", Gamma: math.Inf(1)}, "gamma +Inf"},
	} {
		if _, err := gradcam.New(r, "relu").Method(c.m).Done(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.m, err, c.want)
		}
	}
}
