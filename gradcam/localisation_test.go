package gradcam_test

import (
	"math"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/heatmap"
)

func TestPointingHitAndEnergyFraction(t *testing.T) {
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0.5, 1, 0, 0.5}}
	mask := []bool{false, true, false, true}
	if !gradcam.PointingHit(m, mask) {
		t.Error("the peak is in the mask")
	}
	if got := gradcam.EnergyFraction(m, mask); math.Abs(got-0.75) > 1e-9 {
		t.Errorf("energy fraction %v, want 0.75", got)
	}
	blank := heatmap.Map{Width: 2, Height: 2, Values: make([]float32, 4)}
	if gradcam.PointingHit(blank, mask) || gradcam.EnergyFraction(blank, mask) != 0 {
		t.Error("a blank map scores as its top-left pixel and 0 energy")
	}
}
