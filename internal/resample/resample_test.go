package resample

import (
	"math"
	"testing"
)

// Known answers worked by hand from OpenCV's INTER_LINEAR definition.
func TestTapsUpscaleByTwo(t *testing.T) {
	// src 2 → dst 4: sample points (i+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25 → clamped 0, 0.25, 0.75, 1 (1 is the last pixel).
	got := Taps(2, 4)
	want := []Tap{{0, 1, 0}, {0, 1, 0.25}, {0, 1, 0.75}, {1, 1, 0}}
	for i := range want {
		if got[i].I0 != want[i].I0 || got[i].I1 != want[i].I1 || math.Abs(float64(got[i].F-want[i].F)) > 1e-6 {
			t.Errorf("tap %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestMatrixRowsSumToOneAndInterpolateLinearRamp(t *testing.T) {
	for _, c := range [][2]int{{7, 224}, {5, 3}, {1, 8}, {8, 8}} {
		src, dst := c[0], c[1]
		m := Matrix(src, dst)
		for i := range dst {
			var sum, ramp float64
			for j := range src {
				sum += float64(m[i*src+j])
				ramp += float64(m[i*src+j]) * float64(j)
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Fatalf("%d→%d row %d sums to %v", src, dst, i, sum)
			}
			// A linear ramp v[j]=j resamples to the clamped sample position.
			want := math.Min(math.Max((float64(i)+0.5)*float64(src)/float64(dst)-0.5, 0), float64(src-1))
			if math.Abs(ramp-want) > 1e-5 {
				t.Fatalf("%d→%d row %d: ramp gives %v, want %v", src, dst, i, ramp, want)
			}
		}
	}
}
