package gradcam_test

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/gomlx/gomlx/core/graph"
)

// scoreCAMVariant is the method a scorecams.json entry was computed with.
func scoreCAMVariant(t *testing.T, method string, opts map[string]float64) gradcam.Method {
	t.Helper()
	switch method {
	case "sscam":
		return gradcam.SSCAMMethod{Samples: int(opts["samples"]), Sigma: opts["sigma"], Seed: uint64(opts["seed"])}
	case "iscam":
		return gradcam.ISCAMMethod{Samples: int(opts["samples"])}
	case "fasterscorecam":
		return gradcam.FasterScoreCAMMethod{Channels: int(opts["channels"])}
	}
	t.Fatalf("no method for reference %q", method)
	return nil
}

// SS-CAM, IS-CAM and Faster Score-CAM against their independent PyTorch
// implementations (scripts/reference/gen_scorecams.py): raw maps to 1e-4
// relative, normalised maps to 1e-3 absolute.
func TestScoreCAMVariantsMatchPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	var man struct {
		Layers    map[string]string
		ScoreCAMs []struct {
			Method, Layer, Target string
			Classes               []int
			Options               map[string]float64
			Raw                   struct{ File string }
			Normalised            *struct{ File string }
		}
	}
	if raw, err := os.ReadFile(testutil.Testdata("methods", "scorecams.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ref := range man.ScoreCAMs {
		seen[ref.Method] = true
		t.Run(ref.Method+"/"+ref.Layer+"/"+ref.Target, func(t *testing.T) {
			m := scoreCAMVariant(t, ref.Method, ref.Options)
			res, err := gradcam.New(r, man.Layers[ref.Layer]).Method(m).PointsPerCall(64).Explain(x, methodTarget(ref.Target, ref.Classes))
			if err != nil {
				t.Fatal(err)
			}
			compareWithReference(t, res, ref.Raw.File, ref.Normalised)
		})
	}
	for _, name := range []string{"sscam", "iscam", "fasterscorecam"} {
		if !seen[name] {
			t.Errorf("no reference for %s", name)
		}
		if _, err := gradcam.MethodByName(name); err != nil {
			t.Error(err)
		}
	}
}

// Passes counts every pass the variants run, Progress reports them all,
// and MaxPasses refuses a batch that needs more before running any.
func TestScoreCAMVariantsCountTheirPasses(t *testing.T) {
	r, x, tiny := loadTiny(t)
	l1, l2 := tiny.Layers["layer1"].ONNXOutput, tiny.Layers["layer2"].ONNXOutput // 16 and 32 channels
	for _, c := range []struct {
		method gradcam.Method
		layers []string
		perImg int
	}{
		{gradcam.SSCAMMethod{Samples: 4}, []string{l1}, 16 * 4},
		{gradcam.SSCAM, []string{l1}, 16 * 35},
		{gradcam.ISCAMMethod{Samples: 3}, []string{l1, l2}, (16 + 32) * 3},
		{gradcam.ISCAM, []string{l2}, 32 * 10},
		{gradcam.FasterScoreCAMMethod{Channels: 5}, []string{l1, l2}, 5 + 5},
		{gradcam.FasterScoreCAMMethod{Channels: 20}, []string{l1, l2}, 16 + 20},
		{gradcam.FasterScoreCAM, []string{l1}, 10},
	} {
		t.Run(c.method.Name(), func(t *testing.T) {
			cam, err := gradcam.New(r, c.layers...).Method(c.method).Done()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 3} {
				if got := cam.Passes(n); got != n*c.perImg {
					t.Errorf("%v: Passes(%d) = %d, want %d", c.method, n, got, n*c.perImg)
				}
			}
		})
	}

	// Progress ends at the total, which is Passes.
	m := gradcam.SSCAMMethod{Samples: 2, Sigma: 0.3, Seed: 1}
	var reports []gradcam.Progress
	cam, err := gradcam.New(r, l1, l2).Method(m).PointsPerCall(40).Progress(func(p gradcam.Progress) { reports = append(reports, p) }).Done()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cam.Explain(x, gradcam.Top(1)); err != nil {
		t.Fatal(err)
	}
	want := cam.Passes(3)
	if want != 3*(16+32)*2 {
		t.Errorf("Passes(3) = %d, want %d", want, 3*(16+32)*2)
	}
	last := reports[len(reports)-1]
	if last.Done != want || last.Total != want || reports[0].Layer != l1 || last.Layer != l2 {
		t.Errorf("last of %d reports %+v (first at layer %q), want %d of %d at layer %q", len(reports), last, reports[0].Layer, want, want, l2)
	}
	for i := 1; i < len(reports); i++ {
		if reports[i].Done <= reports[i-1].Done || reports[i].Total != want {
			t.Errorf("report %d %+v after %+v", i, reports[i], reports[i-1])
		}
	}

	// One pass over the limit: refused, naming the count and the samples,
	// before any pass runs.
	reports = nil
	_, err = gradcam.New(r, l1).Method(gradcam.SSCAMMethod{Samples: 4}).MaxPasses(3*64-1).
		Progress(func(p gradcam.Progress) { reports = append(reports, p) }).Explain(x, gradcam.Top(1))
	if err == nil || !strings.Contains(err.Error(), "192 forward passes") || !strings.Contains(err.Error(), "4 per channel and image") ||
		!strings.Contains(err.Error(), "limit of 191") || !strings.Contains(err.Error(), "fewer samples") {
		t.Errorf("3 images of 64 passes, limit 191: error %v", err)
	}
	if len(reports) > 0 {
		t.Errorf("a refused batch reported progress: %+v", reports)
	}
	_, err = gradcam.New(r, l1).Method(gradcam.SSCAMMethod{Samples: 4}).MaxPasses(3*64).Explain(x, gradcam.Top(1))
	if err != nil {
		t.Errorf("exactly at the limit: %v", err)
	}
	_, err = gradcam.New(r, l2).Method(gradcam.FasterScoreCAMMethod{Channels: 7}).MaxPasses(20).Explain(x, gradcam.Top(1))
	if err == nil || !strings.Contains(err.Error(), "21 forward passes") || !strings.Contains(err.Error(), "at most 7 channels") {
		t.Errorf("Faster Score-CAM, 21 passes, limit 20: error %v", err)
	}
}

// Known answers: Faster Score-CAM keeping every channel is Score-CAM, and
// IS-CAM with one sample (c_1 = 1) is Score-CAM; keeping fewer channels is not.
func TestScoreCAMVariantsThatAreScoreCAM(t *testing.T) {
	r, x, tiny := loadTiny(t)
	l2 := tiny.Layers["layer2"].ONNXOutput // 32 channels
	explain := func(m gradcam.Method) *gradcam.Result {
		t.Helper()
		res, err := gradcam.New(r, l2).Method(m).PointsPerCall(32).Explain(x, gradcam.Top(2))
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		return res
	}
	score := explain(gradcam.ScoreCAM)
	for _, m := range []gradcam.Method{gradcam.FasterScoreCAMMethod{Channels: 32}, gradcam.FasterScoreCAMMethod{Channels: 1000}, gradcam.ISCAMMethod{Samples: 1}} {
		res := explain(m)
		if e := testutil.RelErr(res.Raw[0].Values, score.Raw[0].Values); e > 1e-6 {
			t.Errorf("%v: raw maps differ from Score-CAM's by %.3g relative", m, e)
		}
		if e := testutil.MaxAbsDiff(res.Normalized, score.Normalized); e > 1e-6 {
			t.Errorf("%v: normalised maps differ from Score-CAM's by %.3g", m, e)
		}
	}
	for _, m := range []gradcam.Method{gradcam.FasterScoreCAMMethod{Channels: 8}, gradcam.ISCAMMethod{Samples: 3}, gradcam.SSCAMMethod{Samples: 2, Sigma: 0.5}} {
		if e := testutil.RelErr(explain(m).Raw[0].Values, score.Raw[0].Values); e < 1e-3 {
			t.Errorf("%v: raw maps equal Score-CAM's (%.2g relative)", m, e)
		}
	}
}

// The noise follows the seed alone: the points per call (one; chunks whose
// last overlaps the one before; groups of images; all at once) do not
// change SS-CAM's maps, and another seed does.
func TestSSCAMNoiseIsReproducible(t *testing.T) {
	r, x, tiny := loadTiny(t)
	l1 := tiny.Layers["layer1"].ONNXOutput // 16 channels
	explain := func(m gradcam.Method, points int) *gradcam.Result {
		t.Helper()
		res, err := gradcam.New(r, l1).Method(m).PointsPerCall(points).Explain(x, gradcam.Top(2))
		if err != nil {
			t.Fatalf("%v, %d points per call: %v", m, points, err)
		}
		return res
	}
	m := gradcam.SSCAMMethod{Samples: 3, Sigma: 1, Seed: 42}
	whole := explain(m, 3*16*3)
	for _, points := range []int{1, 5, 100} {
		if e := testutil.RelErr(explain(m, points).Raw[0].Values, whole.Raw[0].Values); e > 1e-5 {
			t.Errorf("%d points per call: raw maps differ from one call's by %.3g relative", points, e)
		}
	}
	m.Seed = 43
	if e := testutil.RelErr(explain(m, 48).Raw[0].Values, whole.Raw[0].Values); e < 1e-3 {
		t.Errorf("seeds 42 and 43 give the same maps (%.2g relative)", e)
	}
}

// Bad settings are errors naming the setting, from Done and Explain alike,
// never panics.
func TestScoreCAMVariantsRefuseBadSettings(t *testing.T) {
	r, x, tiny := loadTiny(t)
	l1 := tiny.Layers["layer1"].ONNXOutput
	weights := func(_, p *graph.Node) *graph.Node { return p }
	for _, c := range []struct {
		method gradcam.Method
		want   string
	}{
		{gradcam.SSCAMMethod{Samples: -1}, "Samples=-1 is negative"},
		{gradcam.SSCAMMethod{Sigma: -0.5}, "Sigma=-0.5"},
		{gradcam.SSCAMMethod{Sigma: math.NaN()}, "Sigma=NaN"},
		{gradcam.SSCAMMethod{Sigma: math.Inf(1)}, "Sigma=+Inf"},
		{gradcam.ISCAMMethod{Samples: -3}, "Samples=-3 is negative"},
		{gradcam.FasterScoreCAMMethod{Channels: -1}, "Channels=-1 is negative"},
		{gradcam.Perturbation{MethodName: "noweights"}, "has no Weights"},
		{gradcam.Perturbation{MethodName: "neg", Weights: weights, Samples: -2}, "Samples=-2 is negative"},
		{gradcam.Perturbation{MethodName: "negtop", Weights: weights, TopChannels: -2}, "TopChannels=-2 is negative"},
		{gradcam.Perturbation{MethodName: "abl", Weights: weights, Ablate: true, Samples: 3}, "ablates channels"},
		{gradcam.Perturbation{MethodName: "noisy", Weights: weights, Noisy: true}, "no Sample"},
	} {
		t.Run(c.method.Name(), func(t *testing.T) {
			_, err := gradcam.New(r, l1).Method(c.method).Done()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%#v: Done error %v, want one with %q", c.method, err, c.want)
			}
			_, err = gradcam.New(r, l1).Method(c.method).Explain(x, gradcam.Top(1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%#v: Explain error %v, want one with %q", c.method, err, c.want)
			}
		})
	}
}
