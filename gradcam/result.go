package gradcam

import (
	"github.com/convlens/convlens/heatmap"
)

// Result holds the maps of one batch. Per-image, per-target values are laid
// out image-major: index n*K + k.
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
	// Classes explained, [N,K]; −1 for Score targets.
	Classes []int
	// Scores explained, [N,K]: the logit of the class, or the Score's value.
	Scores []float32
	// Logits of each image, [N,NumClasses].
	Logits     []float32
	NumClasses int
}

// LayerMaps are one layer's raw maps, [N,K,Height,Width].
type LayerMaps struct {
	Height, Width int
	Values        []float32
}

// Map returns the normalised map of image n and target k, at input size.
func (r *Result) Map(n, k int) heatmap.Map {
	size := r.Height * r.Width
	i := n*r.K + k
	return heatmap.Map{Width: r.Width, Height: r.Height, Values: r.Normalized[i*size : (i+1)*size]}
}

// RawMap returns the signed map of image n and target k at layer l, at the
// layer's resolution. Its ReLU is the usual Grad-CAM map before normalisation.
func (r *Result) RawMap(l, n, k int) heatmap.Map {
	lm := r.Raw[l]
	size := lm.Height * lm.Width
	i := n*r.K + k
	return heatmap.Map{Width: lm.Width, Height: lm.Height, Values: lm.Values[i*size : (i+1)*size]}
}

// Class returns the class explained for image n and target k.
func (r *Result) Class(n, k int) int { return r.Classes[n*r.K+k] }

// Score returns the score explained for image n and target k.
func (r *Result) Score(n, k int) float32 { return r.Scores[n*r.K+k] }

// Predicted returns image n's highest-scoring class and its logit.
func (r *Result) Predicted(n int) (class int, logit float32) {
	row := r.Logits[n*r.NumClasses : (n+1)*r.NumClasses]
	for c, v := range row {
		if c == 0 || v > logit {
			class, logit = c, v
		}
	}
	return class, logit
}
