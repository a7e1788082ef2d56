package gradcam_test

import (
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
)

// The accessors of a Result return an error naming the bad index, or the
// field too short for it, and never panic: on a nil or empty result, an
// index outside N, K or the layers, or a hand-made result whose slices are
// shorter than its sizes say.
func TestResultAccessorsRefuseBadIndices(t *testing.T) {
	// 2 images, 1 target, 1×2 maps, 3 classes, one layer of 1×1 maps.
	good := &gradcam.Result{
		Layers: []string{"conv"}, N: 2, K: 1, Height: 1, Width: 2,
		Normalized: []float32{0, 1, 1, 0},
		Raw:        []gradcam.LayerMaps{{Height: 1, Width: 1, Values: []float32{3, 4}}},
		Classes:    []int{2, 0}, Scores: []float32{5, 6},
		Logits: []float32{0, 1, 5, 6, 2, 3}, NumClasses: 3,
	}
	short := *good
	short.Normalized, short.Raw, short.Classes, short.Scores, short.Logits = good.Normalized[:3], []gradcam.LayerMaps{{Height: 1, Width: 1, Values: []float32{3}}}, good.Classes[:1], good.Scores[:1], good.Logits[:4]
	noLogits := *good
	noLogits.NumClasses = 0
	badSize := *good
	badSize.Width = -2
	hugeSize := *good
	hugeSize.Height, hugeSize.Width = 1<<40, 1<<40
	accessors := func(r *gradcam.Result, l, n, k int) map[string]func() error {
		return map[string]func() error{
			"Map":       func() error { _, err := r.Map(n, k); return err },
			"RawMap":    func() error { _, err := r.RawMap(l, n, k); return err },
			"Class":     func() error { _, err := r.Class(n, k); return err },
			"Score":     func() error { _, err := r.Score(n, k); return err },
			"Predicted": func() error { _, _, err := r.Predicted(n); return err },
		}
	}
	for _, c := range []struct {
		name    string
		r       *gradcam.Result
		l, n, k int
		want    map[string]string // accessor → what its error says; "" for none
	}{
		{"nil result", nil, 0, 0, 0, map[string]string{"*": "the result is nil"}},
		{"empty result", &gradcam.Result{}, 0, 0, 0, map[string]string{"*": "the result is empty (N=0 images, K=0 targets)"}},
		{"n past N", good, 0, 2, 0, map[string]string{"*": "image n=2 is outside the result's N=2 images"}},
		{"negative n", good, 0, -1, 0, map[string]string{"*": "image n=-1"}},
		{"k past K", good, 0, 1, 1, map[string]string{"Map": "target k=1 is outside the result's K=1", "RawMap": "target k=1", "Class": "target k=1", "Score": "target k=1", "Predicted": ""}},
		{"l past the layers", good, 1, 0, 0, map[string]string{"RawMap": "layer l=1 is outside the result's 1 layer maps", "Map": "", "Class": "", "Score": "", "Predicted": ""}},
		{"negative l", good, -1, 0, 0, map[string]string{"RawMap": "layer l=-1", "Map": "", "Class": "", "Score": "", "Predicted": ""}},
		{"short slices", &short, 0, 1, 0, map[string]string{"Map": "Normalized holds 3 values", "RawMap": "Raw[0] holds 1 values", "Class": "Classes holds 1 values",
			"Score": "Scores holds 1 values", "Predicted": "Logits holds 4 values"}},
		{"no logits", &noLogits, 0, 0, 0, map[string]string{"Predicted": "no logits (NumClasses=0)", "Map": "", "RawMap": "", "Class": "", "Score": ""}},
		{"negative width", &badSize, 0, 0, 0, map[string]string{"Map": "Normalized maps are -2×1", "RawMap": "", "Class": "", "Score": "", "Predicted": ""}},
		{"huge maps", &hugeSize, 0, 0, 0, map[string]string{"Map": "fewer than one 1099511627776×1099511627776 map", "RawMap": "", "Class": "", "Score": "", "Predicted": ""}},
	} {
		for name, call := range accessors(c.r, c.l, c.n, c.k) {
			want, ok := c.want[name]
			if !ok {
				want = c.want["*"]
			}
			err := call()
			switch {
			case want == "" && err != nil:
				t.Errorf("%s: %s: %v", c.name, name, err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "gradcam.Result."+name)):
				t.Errorf("%s: %s: error %v, want one from gradcam.Result.%s saying %q", c.name, name, err, name, want)
			}
		}
	}
	// In range, the accessors return the result's values.
	m, err := good.Map(1, 0)
	if err != nil || m.Width != 2 || m.Height != 1 || m.Values[0] != 1 || m.Values[1] != 0 {
		t.Errorf("Map(1, 0) = %v, %v", m, err)
	}
	raw, err := good.RawMap(0, 1, 0)
	if err != nil || raw.Values[0] != 4 {
		t.Errorf("RawMap(0, 1, 0) = %v, %v", raw, err)
	}
	if c, err := good.Class(0, 0); err != nil || c != 2 {
		t.Errorf("Class(0, 0) = %d, %v", c, err)
	}
	if s, err := good.Score(1, 0); err != nil || s != 6 {
		t.Errorf("Score(1, 0) = %v, %v", s, err)
	}
	if c, l, err := good.Predicted(1); err != nil || c != 0 || l != 6 {
		t.Errorf("Predicted(1) = %d, %v, %v", c, l, err)
	}
}
