package gradcam_test

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// manifest is the part of testdata/tinycnn/manifest.json these tests read;
// scripts/reference/gen_fixtures.py writes it with PyTorch.
type manifest struct {
	Layers map[string]struct {
		ONNXOutput string `json:"onnx_output"`
	} `json:"layers"`
	Targets map[string]struct {
		Classes []int `json:"classes"`
	} `json:"targets"`
	GradCAM []struct {
		Layer, Target string
		Raw           struct{ File string } `json:"raw"`
		Normalised    struct{ File string } `json:"normalised"`
	} `json:"gradcam"`
	MultiLayer []struct {
		Layers     []string
		Target     string
		Normalised struct{ File string } `json:"normalised"`
	} `json:"multilayer"`
	Top3 struct {
		Layer      string
		Classes    [][]int
		Normalised struct{ File string } `json:"normalised"`
	} `json:"top3"`
}

func loadTiny(t *testing.T) (*models.Runner, *tensors.Tensor, manifest) {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("tinycnn", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	m, err := models.LoadONNX(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	data, shape := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "input.npy"))
	return models.NewRunner(modeltest.Backend(t), m), tensors.FromFlatDataAndDimensions(data, shape...), man
}

// target turns a fixture target name into the Target it was computed for.
func target(t *testing.T, man manifest, name string) gradcam.Target {
	switch name {
	case "top1":
		return gradcam.Top(1)
	case "class3":
		return gradcam.Class(3)
	default:
		return gradcam.Class(man.Targets[name].Classes...)
	}
}

// Raw maps must match PyTorch's to 1e-4 relative, normalised maps to 1e-3 absolute.
func TestGradCAMMatchesPyTorch(t *testing.T) {
	r, x, man := loadTiny(t)
	if len(man.GradCAM) == 0 {
		t.Fatal("manifest lists no Grad-CAM references")
	}
	for _, ref := range man.GradCAM {
		t.Run(ref.Layer+"/"+ref.Target, func(t *testing.T) {
			cam, err := gradcam.New(r, man.Layers[ref.Layer].ONNXOutput).Done()
			if err != nil {
				t.Fatal(err)
			}
			res, err := cam.Explain(x, target(t, man, ref.Target))
			if err != nil {
				t.Fatal(err)
			}
			wantRaw, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", ref.Raw.File))
			wantNorm, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", ref.Normalised.File))
			if e := testutil.RelErr(res.Raw[0].Values, wantRaw); e > 1e-4 {
				t.Errorf("raw map relative error %.3g > 1e-4", e)
			}
			if e := testutil.MaxAbsDiff(res.Normalized, wantNorm); e > 1e-3 {
				t.Errorf("normalised map max abs error %.3g > 1e-3", e)
			}
		})
	}
}

func TestMultiLayerMatchesPyTorch(t *testing.T) {
	r, x, man := loadTiny(t)
	if len(man.MultiLayer) == 0 {
		t.Fatal("manifest lists no multi-layer references")
	}
	for _, ref := range man.MultiLayer {
		t.Run(fmt.Sprint(ref.Layers, ref.Target), func(t *testing.T) {
			var layers []string
			for _, l := range ref.Layers {
				layers = append(layers, man.Layers[l].ONNXOutput)
			}
			cam, err := gradcam.New(r, layers...).Done()
			if err != nil {
				t.Fatal(err)
			}
			res, err := cam.Explain(x, target(t, man, ref.Target))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", ref.Normalised.File))
			if e := testutil.MaxAbsDiff(res.Normalized, want); e > 1e-3 {
				t.Errorf("normalised map max abs error %.3g > 1e-3", e)
			}
		})
	}
}

func TestTopKInOnePassMatchesPyTorch(t *testing.T) {
	r, x, man := loadTiny(t)
	cam, err := gradcam.New(r, man.Layers[man.Top3.Layer].ONNXOutput).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Top(3))
	if err != nil {
		t.Fatal(err)
	}
	for n, classes := range man.Top3.Classes {
		for k, c := range classes {
			if got := res.Classes[n*res.K+k]; got != c {
				t.Errorf("image %d rank %d: class %d, PyTorch's top-3 has %d", n, k, got, c)
			}
		}
	}
	want, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", man.Top3.Normalised.File))
	if e := testutil.MaxAbsDiff(res.Normalized, want); e > 1e-3 {
		t.Errorf("top-3 maps max abs error %.3g > 1e-3", e)
	}
}
