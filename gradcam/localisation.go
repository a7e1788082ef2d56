package gradcam

import (
	"github.com/convlens/convlens/heatmap"
)

// Localisation against a ground-truth mask: how well a heat map falls on the
// object a person marked. mask is row-major at the map's size (for a
// Result.Map, the model's input size); m's values are non-negative, as
// normalised Grad-CAM maps are. `convlens eval lesions` averages both over
// the held-out images (see cmd/convlens/internal/evaluation).

// PointingHit reports whether the pixel where m is largest lies in mask
// (the pointing game, Zhang et al., 2016, without a tolerance margin). On a
// tie the first such pixel in row-major order counts, so a blank map
// scores as its top-left pixel.
func PointingHit(m heatmap.Map, mask []bool) bool {
	best := 0
	for i, v := range m.Values {
		if v > m.Values[best] {
			best = i
		}
	}
	return mask[best]
}

// EnergyFraction is Σ_{p∈mask} m(p) / Σ_p m(p), the share of the map's
// total mass that falls in mask; 0 when the map sums to 0. A map spread
// evenly over the image scores the mask's share of the image.
func EnergyFraction(m heatmap.Map, mask []bool) float64 {
	var in, total float64
	for i, v := range m.Values {
		total += float64(v)
		if mask[i] {
			in += float64(v)
		}
	}
	if total <= 0 {
		return 0
	}
	return in / total
}
