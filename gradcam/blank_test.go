package gradcam_test

import (
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
)

// Blank is true exactly for the maps whose raw values are all ≤ 0 at every
// layer, and refuses bad indices and hand-made results like the other accessors.
func TestResultBlank(t *testing.T) {
	// 2 images, 2 targets; two layers of 1×2 maps.
	r := &gradcam.Result{
		Layers: []string{"a", "b"}, N: 2, K: 2, Height: 1, Width: 2,
		Normalized: make([]float32, 8),
		Raw: []gradcam.LayerMaps{
			{Height: 1, Width: 2, Values: []float32{-1, -2, 0, 0, 3, -1, -1, -1}},
			{Height: 1, Width: 2, Values: []float32{-1, 0, -5, 1, -1, -1, -2, -3}},
		},
	}
	want := [][]bool{{true, false}, {false, true}}
	for n := range 2 {
		for k := range 2 {
			got, err := r.Blank(n, k)
			if err != nil {
				t.Fatal(err)
			}
			if got != want[n][k] {
				t.Errorf("Blank(%d, %d) = %v, want %v", n, k, got, want[n][k])
			}
		}
	}
	for _, c := range []struct {
		r    *gradcam.Result
		n, k int
		want string
	}{
		{nil, 0, 0, "the result is nil"},
		{r, 2, 0, "image n=2 is outside"},
		{r, 0, -1, "target k=-1"},
		{&gradcam.Result{N: 1, K: 1, Height: 1, Width: 1}, 0, 0, "no raw maps"},
		{&gradcam.Result{N: 2, K: 1, Raw: []gradcam.LayerMaps{{Height: 1, Width: 1, Values: []float32{1}}}}, 1, 0, "Raw[0] holds 1 values"},
	} {
		_, err := c.r.Blank(c.n, c.k)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Blank(%d, %d) error %v, want one saying %q", c.n, c.k, err, c.want)
		}
	}
}
