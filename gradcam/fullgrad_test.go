package gradcam_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
)

// FullGrad against its independent PyTorch implementation, which finds the
// bias layers among the modules (the Go one finds them in the ONNX graph,
// BatchNorm folded into the convolutions): raw maps to 1e-4 relative,
// normalised maps to 1e-3 absolute.
func TestFullGradMatchesPyTorch(t *testing.T) {
	r, x, _ := loadTiny(t)
	raw, err := os.ReadFile(testutil.Testdata("methods", "fullgrad.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		FullGrad []struct {
			Target          string
			Classes         []int
			Raw, Normalised struct{ File string }
		}
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.FullGrad) == 0 {
		t.Fatal("no FullGrad references")
	}
	for _, ref := range man.FullGrad {
		t.Run(ref.Target, func(t *testing.T) {
			res, err := gradcam.New(r).Method(gradcam.FullGrad).Explain(x, methodTarget(ref.Target, ref.Classes))
			if err != nil {
				t.Fatal(err)
			}
			wantRaw, _ := testutil.ReadNPY(t, testutil.Testdata("methods", ref.Raw.File))
			eRaw := testutil.RelErr(res.Raw[0].Values, wantRaw)
			if eRaw > 1e-4 {
				t.Errorf("raw map relative error %.3g > 1e-4", eRaw)
			}
			want, _ := testutil.ReadNPY(t, testutil.Testdata("methods", ref.Normalised.File))
			e := testutil.MaxAbsDiff(res.Normalized, want)
			if e > 1e-3 {
				t.Errorf("normalised map max abs error %.3g > 1e-3", e)
			}
			t.Logf("raw rel err %.2g, normalised max abs err %.2g", eRaw, e)
		})
	}
}
