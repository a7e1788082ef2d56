package gradcam_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
)

// masksManifest is testdata/methods/masks.json, written by scripts/reference/gen_methods.py.
type masksManifest struct {
	Masks []struct {
		Method, Target string
		Classes        []int
		Options        struct {
			Window, Stride, Masks, Grid int
			Baseline, Keep              float64
			Seed                        uint64
		}
		Raw, Normalised struct{ File string }
	}
}

// Occlusion and RISE against their independent PyTorch implementations:
// raw maps to 1e-4 relative, normalised maps to 1e-3 absolute, with points
// per call that do not divide the masks (the last call overlaps).
func TestMaskMethodsMatchPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	raw, err := os.ReadFile(testutil.Testdata("methods", "masks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man masksManifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ref := range man.Masks {
		seen[ref.Method] = true
		t.Run(ref.Method+"/"+ref.Target, func(t *testing.T) {
			o := ref.Options
			var m gradcam.Method
			switch ref.Method {
			case "occlusion":
				m = gradcam.OcclusionMethod{Window: o.Window, Stride: o.Stride, Baseline: o.Baseline}
			case "rise":
				m = gradcam.RISEMethod{Masks: o.Masks, Grid: o.Grid, Keep: o.Keep, Seed: o.Seed}
			default:
				t.Fatalf("unknown method %q", ref.Method)
			}
			cam, err := gradcam.New(r).Method(m).PointsPerCall(10).Done()
			if err != nil {
				t.Fatal(err)
			}
			res, err := cam.Explain(x, methodTarget(ref.Target, ref.Classes))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d passes", cam.Passes(res.N))
			compareWithReference(t, res, ref.Raw.File, &ref.Normalised)
		})
	}
	for _, name := range []string{"occlusion", "rise"} {
		if !seen[name] {
			t.Errorf("no reference for %s", name)
		}
	}
}

// The mask methods count their copies in Passes and respect MaxPasses, and
// are registered under their command-line names.
func TestMaskMethodsPassesAndNames(t *testing.T) {
	r, x, _ := loadTiny(t)
	for _, c := range []struct {
		m    gradcam.Method
		name string
		per  int // passes an image at 64×64
	}{
		{gradcam.Occlusion, "occlusion", 7 * 7},
		{gradcam.OcclusionMethod{Window: 12, Stride: 10}, "occlusion", 7 * 7},
		{gradcam.OcclusionMethod{Window: 64, Stride: 1}, "occlusion", 1},
		{gradcam.RISE, "rise", 1000},
	} {
		if got, err := gradcam.MethodByName(c.name); err != nil || got.Name() != c.name {
			t.Errorf("MethodByName(%q) = %v, %v", c.name, got, err)
		}
		cam, err := gradcam.New(r).Method(c.m).MaxPasses(3*c.per - 1).Done()
		if err != nil {
			t.Fatal(err)
		}
		if got := cam.Passes(3); got != 3*c.per {
			t.Errorf("%v: Passes(3) = %d, want %d", c.m, got, 3*c.per)
		}
		if _, err := cam.Explain(x, gradcam.Top(1)); err == nil || !strings.Contains(err.Error(), "more than the limit") {
			t.Errorf("%v: a batch over MaxPasses gave %v, want the limit's error", c.m, err)
		}
	}
}
