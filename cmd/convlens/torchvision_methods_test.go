package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// torchvisionMethodsDir returns a directory with the references of
// scripts/reference/gen_torchvision_methods.py: methods/ under
// $CONVLENS_TORCHVISION_DIR (written there on first use), or, in CI, a fresh
// export. The export is 46 MB, so it is made, never committed.
func torchvisionMethodsDir(t *testing.T) string {
	var dir string
	if root := os.Getenv("CONVLENS_TORCHVISION_DIR"); root != "" {
		dir = filepath.Join(root, "methods")
		if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
			return dir
		}
	} else if os.Getenv("CI") != "true" {
		t.Skip("set CONVLENS_TORCHVISION_DIR (exported there on first use) to check the methods on a torchvision model; CI always does")
	} else {
		dir = t.TempDir()
	}
	script := filepath.Join(testutil.Root(), "scripts", "reference", "gen_torchvision_methods.py")
	testutil.Python(t, fmt.Sprintf("import runpy, sys; sys.argv = [%q, '--out', %q]; runpy.run_path(%q, run_name='__main__')", script, dir, script))
	return dir
}

// tvMethodsManifest is the part of the generator's manifest.json the test reads.
type tvMethodsManifest struct {
	ONNX                string                `json:"onnx"`
	Input               struct{ File string } `json:"input"`
	SimilarityReference struct{ File string } `json:"similarity_reference"`
	Top1                []int                 `json:"top1"`
	Entries             []struct {
		Name, Method, Target string
		ONNXLayer            string             `json:"onnx_layer"` // "" for the methods that take no layer
		Options              map[string]float64 `json:"options"`
		Builder              map[string]any     `json:"builder"`
		Raw, Normalised      struct{ File string }
	} `json:"entries"`
}

// options hands out a manifest entry's options and remembers which were
// read, so that an option the Go side ignores fails the test instead of
// comparing a different function.
type options struct {
	m    map[string]float64
	read map[string]bool
}

func (o *options) f(k string) float64 { o.read[k] = true; return o.m[k] }
func (o *options) i(k string) int     { return int(o.f(k)) }

// tvMethods builds each method of the references from its options. A
// method more (smoothgradcam++, kpcacam) is one line more here and one
// entry more in the generator's ENTRIES.
var tvMethods = map[string]func(o *options) gradcam.Method{
	"gradcam":  func(*options) gradcam.Method { return gradcam.GradCAM },
	"fullgrad": func(*options) gradcam.Method { return gradcam.FullGrad },
	"finercam": func(o *options) gradcam.Method {
		return gradcam.FinerCAMMethod{Alpha: o.f("alpha"), Compare: o.i("compare")}
	},
	"occlusion": func(o *options) gradcam.Method {
		return gradcam.OcclusionMethod{Window: o.i("window"), Stride: o.i("stride"), Baseline: o.f("baseline")}
	},
	"rise": func(o *options) gradcam.Method {
		return gradcam.RISEMethod{Masks: o.i("masks"), Grid: o.i("grid"), Keep: o.f("keep"), Seed: uint64(o.f("seed"))}
	},
	"sscam": func(o *options) gradcam.Method {
		return gradcam.SSCAMMethod{Samples: o.i("samples"), Sigma: o.f("sigma"), Seed: uint64(o.f("seed"))}
	},
	"iscam":          func(o *options) gradcam.Method { return gradcam.ISCAMMethod{Samples: o.i("samples")} },
	"fasterscorecam": func(o *options) gradcam.Method { return gradcam.FasterScoreCAMMethod{Channels: o.i("channels")} },
	"smoothgradcam++": func(o *options) gradcam.Method {
		return gradcam.SmoothGradCAMPlusPlusMethod{Samples: o.i("samples"), Std: o.f("std"), Seed: uint64(o.f("seed"))}
	},
	"kpcacam": func(*options) gradcam.Method { return gradcam.KPCACAM },
}

// tvBuilderOptions applies an entry's Builder options ("builder" in the
// manifest), by name.
var tvBuilderOptions = map[string]func(b *gradcam.Builder, v any) *gradcam.Builder{
	"eigen_smooth": func(b *gradcam.Builder, v any) *gradcam.Builder { return b.EigenSmooth(v == true) },
	"aug_smooth":   func(b *gradcam.Builder, v any) *gradcam.Builder { return b.AugSmooth(v == true) },
}

// The check of the newer methods and targets on a torchvision
// model: on resnet18 (random weights, calibrated BatchNorm, 96×96) every
// entry of gen_torchvision_methods.py's manifest, each an independent
// PyTorch implementation of the method's formula on the torch model, equals
// convlens' map to the tolerances of the other methods: raw 1e-4 relative,
// normalised 1e-3 absolute. No float32 spread needs a wider tolerance:
// measured, raw within 1.3e-5 (Similarity; the rest 2e-7 to 4e-6) and
// normalised within 1.1e-5, but RISE's 9.9e-5 (its map spans 1e-3, so the
// 1e-7 of the second min-max, which the reference does not run, shows).
// 85-100 s in CI on 2 shared cores, 55-70 s of it the generator; SS-CAM and
// IS-CAM take 11-15 s each.
func TestTorchvisionMethodsMatchPyTorch(t *testing.T) {
	dir := torchvisionMethodsDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man tvMethodsManifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	m, err := models.LoadONNX(filepath.Join(dir, man.ONNX))
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	data, shape := testutil.ReadNPY(t, filepath.Join(dir, man.Input.File))
	x := tensors.FromFlatDataAndDimensions(data, shape...)
	reference := read(t, dir, man.SimilarityReference.File)

	seen := map[string]bool{}
	for _, e := range man.Entries {
		seen[e.Method], seen[e.Target] = true, true
		t.Run(e.Name, func(t *testing.T) {
			build, ok := tvMethods[e.Method]
			if !ok {
				t.Fatalf("no method %q: add it to tvMethods", e.Method)
			}
			o := &options{m: e.Options, read: map[string]bool{}}
			method := build(o)
			for k := range e.Options {
				if !o.read[k] {
					t.Fatalf("%s: option %q of the reference is not passed to the method", e.Method, k)
				}
			}
			var layers []string
			if e.ONNXLayer != "" {
				layers = []string{e.ONNXLayer}
			}
			b := gradcam.New(r, layers...).Method(method).PointsPerCall(32)
			for k, v := range e.Builder {
				opt, ok := tvBuilderOptions[k]
				if !ok {
					t.Fatalf("no Builder option %q: add it to tvBuilderOptions", k)
				}
				b = opt(b, v)
			}
			var target gradcam.Target
			switch e.Target {
			case "top1":
				target = gradcam.Top(1)
			case "counterfactual_top1":
				target = gradcam.Counterfactual(gradcam.Top(1))
			case "similarity":
				target = gradcam.Similarity(reference)
			default:
				t.Fatalf("unknown target %q", e.Target)
			}
			cam, err := b.Done()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := cam.Explain(x, target)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			if e.Target != "similarity" && !slices.Equal(res.Classes, man.Top1) {
				t.Fatalf("classes %v, PyTorch's top-1 %v", res.Classes, man.Top1)
			}
			wantRaw, wantNorm := read(t, dir, e.Raw.File), read(t, dir, e.Normalised.File)
			if len(res.Raw[0].Values) != len(wantRaw) || len(res.Normalized) != len(wantNorm) {
				t.Fatalf("%d raw and %d normalised values, PyTorch's %d and %d", len(res.Raw[0].Values), len(res.Normalized), len(wantRaw), len(wantNorm))
			}
			eRaw, eNorm := testutil.RelErr(res.Raw[0].Values, wantRaw), testutil.MaxAbsDiff(res.Normalized, wantNorm)
			t.Logf("raw rel err %.2g, normalised max abs err %.2g (%d passes, %.1fs)", eRaw, eNorm, cam.Passes(res.N), elapsed.Seconds())
			if eRaw > 1e-4 {
				t.Errorf("raw map relative error %.3g > 1e-4", eRaw)
			}
			if eNorm > 1e-3 {
				t.Errorf("normalised map max abs error %.3g > 1e-3", eNorm)
			}
		})
	}
	var missing []string
	for _, name := range []string{"fullgrad", "finercam", "occlusion", "rise", "sscam", "iscam", "fasterscorecam", "counterfactual_top1", "similarity"} {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("no reference for %s", strings.Join(missing, ", "))
	}
}
