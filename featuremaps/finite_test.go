package featuremaps_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// Extract refuses a NaN or an infinity and says where it first appears: in
// the input, at a layer, or in the logits only. Statistics of NaN used to
// reach stats.json, which encoding/json cannot write.
func TestExtractRefusesNonFiniteValues(t *testing.T) {
	nanDense := [][]float32{{1, -1, 0.5}, {0.2, 0.3, -0.4}, {-0.6, 0.1, float32(math.NaN())}, {0.7, 0.7, -0.2}}
	for _, c := range []struct {
		name  string
		model *models.Native
		bad   float32 // image 1's first value, or all of them
		all   bool
		image int
		layer string
		want  string
	}{
		{"NaN pixel", modeltest.TinyNative(), float32(math.NaN()), false, 1, "", "1 of the 60 values of the input are not finite (the first is NaN)"},
		{"infinite pixel", modeltest.TinyNative(), float32(math.Inf(1)), false, 1, "", "values of the input are not finite (the first is +Inf)"},
		{"overflow at a layer", modeltest.TinyNative(), math.MaxFloat32, true, 1, "", ""}, // layer: see firstNonFinite
		{"NaN weights after the layers", modeltest.TinyNativeWithDense(nanDense), 0.5, false, 0, "", "values of the logits are not finite"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := models.NewRunner(modeltest.Backend(t), c.model)
			defer r.Close()
			data := make([]float32, 2*5*6*2)
			for i := range data {
				data[i] = 0.5
			}
			data[60] = c.bad
			if c.all {
				for i := 60; i < 120; i++ {
					data[i] = c.bad
				}
			}
			if c.layer == "" && c.all {
				c.layer = firstNonFinite(t, r, data[60:120], "relu", "pool")
				c.want = fmt.Sprintf("values of the activation of layer %q are not finite", c.layer)
			}
			_, err := featuremaps.Extract(r, tensors.FromFlatDataAndDimensions(data, 2, 5, 6, 2), "relu", "pool")
			var nf *featuremaps.NonFiniteError
			if !errors.As(err, &nf) {
				t.Fatalf("err = %v, want a NonFiniteError", err)
			}
			if nf.Image != c.image || nf.Layer != c.layer {
				t.Errorf("error for image %d, layer %q; want image %d, layer %q", nf.Image, nf.Layer, c.image, c.layer)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("image %d: ", c.image)) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("message %q, want it to name image %d and contain %q", err, c.image, c.want)
			}
		})
	}
}

// firstNonFinite runs one image alone and returns the first of layers whose
// activation holds a NaN or an infinity, read directly from the runner. With
// every pixel at the largest float32, the convolution's sum overflows or not
// depending on its order of summation, which differs between graphs: the
// overflow shows at "relu" or only at "pool", and Extract must name that
// layer either way.
func firstNonFinite(t *testing.T, r *models.Runner, image []float32, layers ...string) string {
	t.Helper()
	_, acts, err := r.Run(tensors.FromFlatDataAndDimensions(image, 1, 5, 6, 2), layers...)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acts {
		for _, v := range tensors.MustCopyFlatData[float32](a) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return layers[i]
			}
		}
	}
	t.Fatalf("no layer of %v overflows: the case does not test a layer", layers)
	return ""
}
