package gradcam_test

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
)

// methodsManifest is testdata/methods/manifest.json, written by scripts/reference/gen_methods.py.
type methodsManifest struct {
	Layers     map[string]string `json:"layers"`
	SmoothGrad struct {
		Samples int
		Sigma   float64
		Seed    uint64
	} `json:"smoothgrad"`
	IntegratedGradients struct {
		Steps    int
		Baseline float64
	} `json:"integratedgradients"`
	CAM []struct {
		Method, Layer, Target string
		Classes               []int
		Raw                   struct{ File string }
		Normalised            *struct{ File string }
	} `json:"cam"`
	Signed struct {
		Method, Layer string
		Normalised    struct{ File string }
	} `json:"signed"`
	Input []struct {
		Method     string
		Classes    []int
		RawMax     []float64 `json:"raw_max"`
		Normalised struct{ File string }
	} `json:"input"`
}

func loadMethods(t *testing.T) methodsManifest {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("methods", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man methodsManifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	return man
}

func methodTarget(name string, classes []int) gradcam.Target {
	if name == "top1" {
		return gradcam.Top(1)
	}
	return gradcam.Class(classes...)
}

// Every CAM-family method against its independent PyTorch implementation:
// raw maps to 1e-4 relative, normalised maps to 1e-3 absolute.
func TestCAMFamilyMatchesPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	man := loadMethods(t)
	seen := map[string]bool{}
	for _, ref := range man.CAM {
		seen[ref.Method] = true
		t.Run(ref.Method+"/"+ref.Layer+"/"+ref.Target, func(t *testing.T) {
			m, err := gradcam.MethodByName(ref.Method)
			if err != nil {
				t.Fatal(err)
			}
			cam, err := gradcam.New(r, man.Layers[ref.Layer]).Method(m).BatchSize(5).Done()
			if err != nil {
				t.Fatal(err)
			}
			res, err := cam.Explain(x, methodTarget(ref.Target, ref.Classes))
			if err != nil {
				t.Fatal(err)
			}
			compareWithReference(t, res, ref.Raw.File, ref.Normalised)
		})
	}
	for _, name := range []string{"gradcam", "hirescam", "gradcam-elementwise", "gradcam++", "xgradcam",
		"layercam", "eigencam", "eigengradcam", "scorecam", "ablationcam"} {
		if !seen[name] {
			t.Errorf("no reference for %s", name)
		}
	}
}

// ReLU(false) keeps the sign: the map is scaled by its largest magnitude.
func TestSignedMapMatchesPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	man := loadMethods(t)
	m, err := gradcam.MethodByName(man.Signed.Method)
	if err != nil {
		t.Fatal(err)
	}
	cam, err := gradcam.New(r, man.Layers[man.Signed.Layer]).Method(m).ReLU(false).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Top(1))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := testutil.ReadNPY(t, testutil.Testdata("methods", man.Signed.Normalised.File))
	if e := testutil.MaxAbsDiff(res.Normalized, want); e > 1e-3 {
		t.Errorf("signed map max abs error %.3g > 1e-3", e)
	} else {
		t.Logf("signed map max abs error %.2g", e)
	}
	var neg bool
	for _, v := range res.Normalized {
		neg = neg || v < -0.1
	}
	if !neg {
		t.Error("the signed map has no clearly negative values")
	}
}

func TestInputAttributionsMatchPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	man := loadMethods(t)
	methods := map[string]gradcam.Method{
		"saliency":            gradcam.Saliency,
		"smoothgrad":          gradcam.SmoothGradMethod{Samples: man.SmoothGrad.Samples, Sigma: man.SmoothGrad.Sigma, Seed: man.SmoothGrad.Seed},
		"integratedgradients": gradcam.IntegratedGradientsMethod{Steps: man.IntegratedGradients.Steps, Baseline: man.IntegratedGradients.Baseline},
		"guidedbackprop":      gradcam.GuidedBackprop,
		"guidedgradcam":       gradcam.GuidedGradCAM,
	}
	for _, ref := range man.Input {
		t.Run(ref.Method, func(t *testing.T) {
			m := methods[ref.Method]
			if m == nil {
				t.Fatalf("no method for reference %q", ref.Method)
			}
			cam, err := gradcam.New(r, man.Layers["layer2"]).Method(m).Done()
			if err != nil {
				t.Fatal(err)
			}
			res, err := cam.Explain(x, gradcam.Top(1))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := testutil.ReadNPY(t, testutil.Testdata("methods", ref.Normalised.File))
			e := testutil.MaxAbsDiff(res.Normalized, want)
			if e > 1e-3 {
				t.Errorf("normalised map max abs error %.3g > 1e-3", e)
			}
			raw := res.Raw[0]
			size := raw.Height * raw.Width
			var scaleErr float64
			for n, wantMax := range ref.RawMax {
				got := math.Inf(-1)
				for _, v := range raw.Values[n*size : (n+1)*size] {
					got = math.Max(got, float64(v))
				}
				scaleErr = math.Max(scaleErr, math.Abs(got-wantMax)/math.Abs(wantMax))
			}
			if scaleErr > 1e-3 {
				t.Errorf("raw map maximum differs by %.3g relative", scaleErr)
			}
			t.Logf("normalised max abs err %.2g, raw scale rel err %.2g", e, scaleErr)
		})
	}
}

func TestUnknownMethodListsKnownOnes(t *testing.T) {
	_, err := gradcam.MethodByName("gradcam+++")
	if err == nil {
		t.Fatal("unknown method accepted")
	}
	for _, name := range gradcam.MethodNames() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not list %s", err, name)
		}
	}
	if len(gradcam.MethodNames()) < 15 {
		t.Errorf("only %d methods registered: %v", len(gradcam.MethodNames()), gradcam.MethodNames())
	}
}

// Top-K and several layers go through every kind of method: the k-th map of
// Top(2) equals the map of the k-th class asked for alone, and each layer's
// raw map equals that layer's map computed alone.
func TestTopKAndLayersForEveryKindOfMethod(t *testing.T) {
	r, x, _ := loadTiny(t)
	man := loadMethods(t)
	l1, l2 := man.Layers["layer1"], man.Layers["layer2"]
	for _, m := range []gradcam.Method{gradcam.GradCAMPlusPlus, gradcam.EigenGradCAM, gradcam.ScoreCAM, gradcam.AblationCAM,
		gradcam.SmoothGradMethod{Samples: 3, Sigma: 0.1, Seed: 1}, gradcam.IntegratedGradientsMethod{Steps: 4}, gradcam.GuidedGradCAM,
		gradcam.SmoothGradCAMPlusPlusMethod{Samples: 3, Std: 0.2, Seed: 1}, gradcam.KPCACAM} {
		t.Run(m.Name(), func(t *testing.T) {
			layers := []string{l1, l2}
			if m == gradcam.GuidedGradCAM {
				layers = layers[1:] // its one map multiplies the layers' combined Grad-CAM
			}
			both, err := gradcam.New(r, layers...).Method(m).BatchSize(12).Done()
			if err != nil {
				t.Fatal(err)
			}
			top, err := both.Explain(x, gradcam.Top(2))
			if err != nil {
				t.Fatal(err)
			}
			second := make([]int, top.N)
			for n := range second {
				second[n] = top.Classes[n*top.K+1]
			}
			for li, layer := range layers {
				single, err := gradcam.New(r, layer).Method(m).Done()
				if err != nil {
					t.Fatal(err)
				}
				res, err := single.Explain(x, gradcam.Class(second...))
				if err != nil {
					t.Fatal(err)
				}
				li := min(li, len(top.Raw)-1) // input methods have one raw map
				lm := top.Raw[li]
				size := lm.Height * lm.Width
				var got []float32
				for n := range top.N {
					got = append(got, lm.Values[(n*2+1)*size:(n*2+2)*size]...)
				}
				if e := testutil.RelErr(got, res.Raw[0].Values); e > 1e-4 {
					t.Errorf("layer %d, second class: raw map differs from the single-target one by %.3g", li, e)
				}
			}
		})
	}
}

// compareWithReference checks res's raw map against the fixture rawFile
// (1e-4 relative) and, when given, its normalised map (1e-3 absolute): the
// tolerances every method's PyTorch reference is held to.
func compareWithReference(t *testing.T, res *gradcam.Result, rawFile string, normalised *struct{ File string }) {
	t.Helper()
	wantRaw, _ := testutil.ReadNPY(t, testutil.Testdata("methods", rawFile))
	eRaw := testutil.RelErr(res.Raw[0].Values, wantRaw)
	if eRaw > 1e-4 {
		t.Errorf("raw map relative error %.3g > 1e-4", eRaw)
	}
	if normalised == nil {
		t.Logf("raw rel err %.2g", eRaw)
		return
	}
	want, _ := testutil.ReadNPY(t, testutil.Testdata("methods", normalised.File))
	e := testutil.MaxAbsDiff(res.Normalized, want)
	if e > 1e-3 {
		t.Errorf("normalised map max abs error %.3g > 1e-3", e)
	}
	t.Logf("raw rel err %.2g, normalised max abs err %.2g", eRaw, e)
}
