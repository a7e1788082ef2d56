package metrics

import (
	"fmt"
	"math"

	"github.com/convlens/convlens/heatmap"
)

// Localisation against a ground-truth mask: how well a heat map falls on the
// object a person marked. mask is row-major at the map's size (for a
// gradcam.Result.Map, the model's input size); m's values are non-negative,
// as normalised Grad-CAM maps are. `convlens eval lesions` averages both
// over the held-out images.

// checkMask validates m and mask for the localisation metric fn.
func checkMask(fn string, m heatmap.Map, mask []bool) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("metrics.%s: map m: %w", fn, err)
	}
	if len(mask) != len(m.Values) {
		return fmt.Errorf("metrics.%s: mask has %d values for a %dx%d map: give one per pixel of the map, row-major (resize the mask, or the map, to the other)",
			fn, len(mask), m.Width, m.Height)
	}
	for i, v := range m.Values {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("metrics.%s: map m holds %v at (%d, %d): a map must be finite", fn, v, i%m.Width, i/m.Width)
		}
	}
	return nil
}

// PointingHit reports whether the pixel where m is largest lies in mask
// (the pointing game, Zhang et al., 2016, without a tolerance margin). On a
// tie the first such pixel in row-major order counts, so a blank map
// scores as its top-left pixel. An invalid or non-finite map, or a mask of
// another size than the map, is an error.
func PointingHit(m heatmap.Map, mask []bool) (bool, error) {
	if err := checkMask("PointingHit", m, mask); err != nil {
		return false, err
	}
	best := 0
	for i, v := range m.Values {
		if v > m.Values[best] {
			best = i
		}
	}
	return mask[best], nil
}

// EnergyFraction is Σ_{p∈mask} m(p) / Σ_p m(p), the share of the map's
// total mass that falls in mask; 0 when the map sums to 0 or less. A map
// spread evenly over the image scores the mask's share of the image. An
// invalid or non-finite map, or a mask of another size than the map, is an
// error.
func EnergyFraction(m heatmap.Map, mask []bool) (float64, error) {
	if err := checkMask("EnergyFraction", m, mask); err != nil {
		return 0, err
	}
	var in, total float64
	for i, v := range m.Values {
		total += float64(v)
		if mask[i] {
			in += float64(v)
		}
	}
	if total <= 0 {
		return 0, nil
	}
	return in / total, nil
}
