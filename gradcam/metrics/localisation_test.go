package metrics_test

import (
	"math"
	"testing"

	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/heatmap"
)

// Worked by hand: the peak 1 is at pixel 1, in the mask; the mask holds 0.5
// and 1 of the map's total 2.
func TestPointingHitAndEnergyFraction(t *testing.T) {
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0.5, 1, 0, 0.5}}
	mask := []bool{false, true, false, true}
	if hit, err := metrics.PointingHit(m, mask); err != nil || !hit {
		t.Errorf("PointingHit = %v, %v; the peak is in the mask", hit, err)
	}
	if got, err := metrics.EnergyFraction(m, mask); err != nil || math.Abs(got-0.75) > 1e-9 {
		t.Errorf("EnergyFraction = %v, %v; want 0.75", got, err)
	}
	mask[1] = false
	if hit, err := metrics.PointingHit(m, mask); err != nil || hit {
		t.Errorf("PointingHit = %v, %v; the peak left the mask", hit, err)
	}
	blank := heatmap.Map{Width: 2, Height: 2, Values: make([]float32, 4)}
	hit, err1 := metrics.PointingHit(blank, []bool{false, true, false, true})
	energy, err2 := metrics.EnergyFraction(blank, mask)
	if hit || energy != 0 || err1 != nil || err2 != nil {
		t.Errorf("a blank map: hit %v, energy %v (%v, %v); want its top-left pixel (outside) and 0", hit, energy, err1, err2)
	}
}
