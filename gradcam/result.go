package gradcam

import (
	"fmt"

	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
)

// Result holds the maps of one batch. Per-image, per-target values are laid
// out image-major: index n*K + k.
//
// Its accessors ([Result.Map], [Result.Class], ...) return an error, never
// panic, for an index outside the result or a result whose slices are
// shorter than N, K and the sizes say (an empty or hand-made Result).
type Result struct {
	// Layers the maps were computed at (none for input attributions).
	Layers []string
	// N images, K targets per image (K > 1 for Top(K) or a multi-score target).
	N, K int
	// Height and Width of the normalised maps: the model's input size.
	Height, Width int
	// Normalized maps, [N,K,Height,Width], in [0,1] (see the package doc);
	// in [−1,1] with Builder.ReLU(false), at raw scale with Builder.Normalize(false).
	Normalized []float32
	// Raw signed maps at each layer's resolution, one entry per layer; for
	// input attributions one entry at the input's resolution.
	Raw []LayerMaps
	// Classes explained, [N,K]; −1 for Score targets. For a model with one
	// output, 1 is the positive decision and 0 the negative (see [Target]).
	Classes []int
	// Scores explained, [N,K]: the logit of the class (±z for a one-output
	// model's decisions), or the Score's value; negated for a
	// [Counterfactual] target.
	Scores []float32
	// Logits of each image, [N,NumClasses]: the model's output, or for a
	// [Segment] target each class's output summed over the region.
	Logits     []float32
	NumClasses int
}

// LayerMaps are one layer's raw maps, [N,K,Height,Width].
type LayerMaps struct {
	Height, Width int
	Values        []float32
}

// target checks image n and target k of r for the accessor fn and returns
// their index n*K + k.
func (r *Result) target(fn string, n, k int) (int, error) {
	if r == nil {
		return 0, fmt.Errorf("gradcam.Result.%s: the result is nil: get one from CAM.Explain, and check its error", fn)
	}
	if r.N <= 0 || r.K <= 0 {
		return 0, fmt.Errorf("gradcam.Result.%s: the result is empty (N=%d images, K=%d targets): get one from CAM.Explain, and check its error", fn, r.N, r.K)
	}
	if n < 0 || n >= r.N {
		return 0, fmt.Errorf("gradcam.Result.%s: image n=%d is outside the result's N=%d images: n must be in [0, %d)", fn, n, r.N, r.N)
	}
	if k < 0 || k >= r.K {
		return 0, fmt.Errorf("gradcam.Result.%s: target k=%d is outside the result's K=%d targets an image: k must be in [0, %d)", fn, k, r.K, r.K)
	}
	return n*r.K + k, nil
}

// slice returns values[i*size:(i+1)*size], or an error naming field if the
// slice is too short for it.
func slice[T any](fn, field string, values []T, i, size int) ([]T, error) {
	if size < 0 || i+1 > len(values)/max(size, 1) {
		return nil, fmt.Errorf("gradcam.Result.%s: %s holds %d values, too few for entry %d of %d values: the result is inconsistent (made by hand?)",
			fn, field, len(values), i, size)
	}
	return values[i*size : (i+1)*size], nil
}

// mapOf checks a map's size and returns the map of entry i of values.
func mapOf(fn, field string, width, height int, values []float32, i int) (heatmap.Map, error) {
	if width <= 0 || height <= 0 {
		return heatmap.Map{}, fmt.Errorf("gradcam.Result.%s: %s maps are %d×%d: the result is inconsistent (made by hand?)", fn, field, width, height)
	}
	if height > len(values)/width {
		return heatmap.Map{}, fmt.Errorf("gradcam.Result.%s: %s holds %d values, fewer than one %d×%d map: the result is inconsistent (made by hand?)",
			fn, field, len(values), width, height)
	}
	v, err := slice(fn, field, values, i, width*height)
	if err != nil {
		return heatmap.Map{}, err
	}
	return heatmap.Map{Width: width, Height: height, Values: v}, nil
}

// Map returns the normalised map of image n and target k, at input size. Its
// values are the result's own, not a copy.
func (r *Result) Map(n, k int) (heatmap.Map, error) {
	i, err := r.target("Map", n, k)
	if err != nil {
		return heatmap.Map{}, err
	}
	return mapOf("Map", "Normalized", r.Width, r.Height, r.Normalized, i)
}

// RawMap returns the signed map of image n and target k at layer l, at the
// layer's resolution. Its ReLU is the usual Grad-CAM map before normalisation.
func (r *Result) RawMap(l, n, k int) (heatmap.Map, error) {
	i, err := r.target("RawMap", n, k)
	if err != nil {
		return heatmap.Map{}, err
	}
	if l < 0 || l >= len(r.Raw) {
		return heatmap.Map{}, fmt.Errorf("gradcam.Result.RawMap: layer l=%d is outside the result's %d layer maps (Raw): l must be in [0, %d)", l, len(r.Raw), len(r.Raw))
	}
	lm := r.Raw[l]
	return mapOf("RawMap", fmt.Sprintf("Raw[%d]", l), lm.Width, lm.Height, lm.Values, i)
}

// Class returns the class explained for image n and target k (−1 for a Score target).
func (r *Result) Class(n, k int) (int, error) {
	i, err := r.target("Class", n, k)
	if err != nil {
		return 0, err
	}
	c, err := slice("Class", "Classes", r.Classes, i, 1)
	if err != nil {
		return 0, err
	}
	return c[0], nil
}

// Score returns the score explained for image n and target k.
func (r *Result) Score(n, k int) (float32, error) {
	i, err := r.target("Score", n, k)
	if err != nil {
		return 0, err
	}
	s, err := slice("Score", "Scores", r.Scores, i, 1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

// Predicted returns image n's highest-scoring class and its logit (the
// first such class on a tie). For a model with one output z it returns the
// decision (see [Target]): class 1 and z when z > 0, else class 0 and −z.
func (r *Result) Predicted(n int) (class int, logit float32, err error) {
	row, err := r.logits("Predicted", n)
	if err != nil {
		return 0, 0, err
	}
	if len(row) == 1 {
		if row[0] > 0 {
			return 1, row[0], nil
		}
		return 0, -row[0], nil
	}
	for c, v := range row {
		if c == 0 || v > logit {
			class, logit = c, v
		}
	}
	return class, logit, nil
}

// Probabilities returns image n's class probabilities, [models.Probabilities]
// of its logits: their softmax, or for a model with one output the two
// decisions' (1 − σ(z), σ(z)).
func (r *Result) Probabilities(n int) ([]float64, error) {
	row, err := r.logits("Probabilities", n)
	if err != nil {
		return nil, err
	}
	p, err := models.Probabilities(row)
	if err != nil {
		return nil, fmt.Errorf("image %d: %w", n, err)
	}
	return p, nil
}

// logits returns image n's logits, for the accessor fn.
func (r *Result) logits(fn string, n int) ([]float32, error) {
	if _, err := r.target(fn, n, 0); err != nil {
		return nil, err
	}
	if r.NumClasses <= 0 {
		return nil, fmt.Errorf("gradcam.Result.%s: the result has no logits (NumClasses=0): the result is inconsistent (made by hand?)", fn)
	}
	return slice(fn, "Logits", r.Logits, n, r.NumClasses)
}
