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
			compareWithReference(t, res, ref.Raw.File, &ref.Normalised)
		})
	}
}
