package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// segmentationDir returns a directory of torchvision segmentation exports
// (scripts/reference/export_segmentation.py): $CONVLENS_SEGMENTATION_DIR,
// exported there on first use, or in CI a fresh export. They weigh 260 MB
// (fcn_resnet50 alone 132 MB), so they are made, never committed.
func segmentationDir(t *testing.T) string {
	dir := os.Getenv("CONVLENS_SEGMENTATION_DIR")
	switch {
	case dir != "":
		if _, err := os.Stat(filepath.Join(dir, "fcn_resnet50.json")); err == nil {
			return dir
		}
	case os.Getenv("CI") == "true":
		dir = t.TempDir()
	default:
		t.Skip("set CONVLENS_SEGMENTATION_DIR (exported there on first use) to check torchvision's segmentation models; CI always does")
	}
	script := filepath.Join(testutil.Root(), "scripts", "reference", "export_segmentation.py")
	testutil.Python(t, fmt.Sprintf("import runpy, sys; sys.argv = [%q, '--out', %q]; runpy.run_path(%q, run_name='__main__')", script, dir, script))
	return dir
}

// torchvision's segmentation networks, exported by PyTorch at several
// opsets: the Segment target's maps (the class over where the model
// predicts it, and over a rectangle) equal pytorch-grad-cam's
// SemanticSegmentationTarget Grad-CAM computed on the PyTorch model, to the
// tolerances of every method (raw 1e-4 relative, normalised 1e-3), at the
// layer named by its module path.
func TestTorchvisionSegmentationMatchesPyTorch(t *testing.T) {
	dir := segmentationDir(t)
	b := modeltest.Backend(t)
	values, shape, err := npy.ReadFloat32(filepath.Join(dir, "region.npy"))
	if err != nil {
		t.Fatal(err)
	}
	region := heatmap.Map{Width: shape[1], Height: shape[0], Values: values}
	for _, name := range []string{"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50"} {
		raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Class   int
			Module  string
			Targets map[string]struct {
				Raw, Raw64, Normalised, Normalised64 string
				Scores, Scores64                     []float32
				Spread                               struct{ Raw, Normalised, Scores float64 }
			}
			Opsets map[string]struct{ ONNX, Layer string }
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			t.Fatal(err)
		}
		data, xs, err := npy.ReadFloat32(filepath.Join(dir, name+".input.npy"))
		if err != nil {
			t.Fatal(err)
		}
		x := tensors.FromFlatDataAndDimensions(data, xs...)
		var spread struct{ Raw, Normalised, Scores float64 }
		for _, target := range ref.Targets {
			spread.Raw, spread.Normalised = max(spread.Raw, target.Spread.Raw), max(spread.Normalised, target.Spread.Normalised)
			spread.Scores = max(spread.Scores, target.Spread.Scores)
		}
		for opset, o := range ref.Opsets {
			t.Run(name+"/opset"+opset, func(t *testing.T) {
				m, err := models.LoadONNX(filepath.Join(dir, o.ONNX))
				if err != nil {
					t.Fatal(err)
				}
				r := models.NewRunner(b, m)
				defer r.Close()
				cam, err := gradcam.New(r, ref.Module).Done()
				if err != nil {
					t.Fatal(err)
				}
				if got := cam.Layers()[0]; got != o.Layer {
					t.Errorf("module %s resolved to %s, torch's last node of it is %s", ref.Module, got, o.Layer)
				}
				for key, target := range map[string]gradcam.Target{
					"predicted": gradcam.Segment(ref.Class, heatmap.Map{}),
					"region":    gradcam.Segment(ref.Class, region),
				} {
					res, err := cam.Explain(x, target)
					if err != nil {
						t.Fatalf("%s: %v", key, err)
					}
					want := ref.Targets[key]
					// The nearer of PyTorch's float32 and float64 runs.
					nearest := func(err func(want []float32) float64, files ...string) float64 {
						e := math.Inf(1)
						for _, f := range files {
							w, _ := testutil.ReadNPY(t, filepath.Join(dir, f))
							e = math.Min(e, err(w))
						}
						return e
					}
					eRaw := nearest(func(w []float32) float64 { return testutil.RelErr(res.Raw[0].Values, w) }, want.Raw, want.Raw64)
					eNorm := nearest(func(w []float32) float64 { return testutil.MaxAbsDiff(res.Normalized, w) }, want.Normalised, want.Normalised64)
					eScore := math.Min(testutil.RelErr(res.Scores, want.Scores), testutil.RelErr(res.Scores, want.Scores64))
					// Where PyTorch's own float32 run is farther than the
					// tolerance from its float64 run (fcn_resnet50: 1.0e-3
					// raw, from ReLUs of its head within rounding of zero,
					// and 1.0e-4 in scores, from pixels whose two best
					// classes tie, which move into or out of the predicted
					// region), no float32 run can do better. The spread is
					// the model's, its largest over the targets, both of
					// which cross the same head; one pair of runs samples
					// it, so the tolerance is three times it.
					tRaw, tNorm, tScore := max(1e-4, 3*spread.Raw), max(1e-3, 3*spread.Normalised), max(1e-4, 3*spread.Scores)
					t.Logf("%s: raw rel err %.2g (tolerance %.2g), normalised max abs err %.2g (%.2g), score rel err %.2g (%.2g)",
						key, eRaw, tRaw, eNorm, tNorm, eScore, tScore)
					if eRaw > tRaw || eNorm > tNorm || eScore > tScore {
						t.Errorf("%s: raw %.3g (≤ %.2g), normalised %.3g (≤ %.2g), scores %.3g (≤ %.2g)", key, eRaw, tRaw, eNorm, tNorm, eScore, tScore)
					}
				}
			})
		}
		// The command line, on the newest opset: the same map, by module path.
		newest := ""
		for opset := range ref.Opsets {
			if len(opset) > len(newest) || len(opset) == len(newest) && opset > newest {
				newest = opset
			}
		}
		out := filepath.Join(t.TempDir(), "cam.npy")
		code, stdout, stderr := convlens(t, "cam", "--model", filepath.Join(dir, ref.Opsets[newest].ONNX),
			"--input", filepath.Join(dir, name+".input.npy"), "--layer", ref.Module, "--segment", fmt.Sprint(ref.Class), "--out-npy", out)
		if code != 0 {
			t.Fatalf("%s: cam --segment: exit %d: %s", name, code, stderr)
		}
		got, _, err := npy.ReadFloat32(out)
		if err != nil {
			t.Fatal(err)
		}
		pred := ref.Targets["predicted"]
		want, _ := testutil.ReadNPY(t, filepath.Join(dir, pred.Normalised))
		want64, _ := testutil.ReadNPY(t, filepath.Join(dir, pred.Normalised64))
		if e := math.Min(testutil.MaxAbsDiff(got, want), testutil.MaxAbsDiff(got, want64)); e > max(1e-3, 3*spread.Normalised) || !strings.Contains(stdout, fmt.Sprintf("class %d", ref.Class)) {
			t.Errorf("%s: cam --segment: map off by %.3g, stdout %q", name, e, stdout)
		}
	}
}
