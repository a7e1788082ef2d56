package metrics

import (
	"math"
	"testing"
)

// A linear ramp satisfies the imputation equations away from the border (the
// stencil is symmetric), so a hole inside it, however large, must be filled
// with the ramp itself.
func TestSolveLaplaceRestoresARamp(t *testing.T) {
	for _, c := range []struct{ h, w, margin int }{{8, 8, 2}, {64, 64, 3}, {224, 200, 2}} {
		v := make([]float64, c.h*c.w)
		want := make([]float64, len(v))
		removed := make([]bool, len(v))
		for y := range c.h {
			for x := range c.w {
				p := y*c.w + x
				want[p] = 0.3*float64(x) - 0.7*float64(y) + 5
				v[p] = want[p]
				if y >= c.margin && y < c.h-c.margin && x >= c.margin && x < c.w-c.margin {
					removed[p] = true
					v[p] = 1000 // must not survive
				}
			}
		}
		solveLaplace(v, removed, c.h, c.w)
		var worst float64
		for p := range v {
			worst = math.Max(worst, math.Abs(v[p]-want[p]))
		}
		// The ramp spans about 0.3·w + 0.7·h; ask for 1e-3 of that.
		if span := 0.3*float64(c.w) + 0.7*float64(c.h); worst > 1e-3*span {
			t.Errorf("%dx%d with a %d-pixel border kept: imputed ramp off by %.3g (span %.3g)", c.h, c.w, c.margin, worst, span)
		}
	}
}
