package gradcam_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/gomlx/gomlx/core/graph"
)

// Finer-CAM against its independent PyTorch implementation: raw maps to
// 1e-4 relative, normalised maps to 1e-3 absolute.
func TestFinerCAMMatchesPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	raw, err := os.ReadFile(testutil.Testdata("methods", "finercam.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Layers   map[string]string
		FinerCAM []struct {
			Layer, Target string
			Classes       []int
			Options       struct {
				Alpha   float64
				Compare int
			}
			Raw        struct{ File string }
			Normalised *struct{ File string }
		}
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.FinerCAM) == 0 {
		t.Fatal("no Finer-CAM references")
	}
	for _, ref := range man.FinerCAM {
		t.Run(ref.Layer+"/"+ref.Target, func(t *testing.T) {
			m := gradcam.FinerCAMMethod{Alpha: ref.Options.Alpha, Compare: ref.Options.Compare}
			res, err := gradcam.New(r, man.Layers[ref.Layer]).Method(m).Explain(x, methodTarget(ref.Target, ref.Classes))
			if err != nil {
				t.Fatal(err)
			}
			compareWithReference(t, res, ref.Raw.File, ref.Normalised)
		})
	}
	// It differs from Grad-CAM, and refuses a Score target.
	l2 := man.Layers["layer2_conv2"]
	fin, err := gradcam.New(r, l2).Method(gradcam.FinerCAM).Explain(x, gradcam.Top(1))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := gradcam.New(r, l2).Method(gradcam.GradCAM).Explain(x, gradcam.Top(1))
	if err != nil {
		t.Fatal(err)
	}
	if testutil.RelErr(fin.Raw[0].Values, plain.Raw[0].Values) < 1e-3 {
		t.Error("Finer-CAM's map equals Grad-CAM's")
	}
	_, err = gradcam.New(r, l2).Method(gradcam.FinerCAM).Explain(x, gradcam.Score("sum", func(l *graph.Node) *graph.Node { return graph.ReduceSum(l, 1) }))
	if err == nil || !strings.Contains(err.Error(), "class targets") {
		t.Errorf("a Score target gave %v, want an error asking for class targets", err)
	}
}
