// Package resample holds the one bilinear resampling convention convlens uses
// everywhere: OpenCV's INTER_LINEAR, which is also PyTorch's
// interpolate(mode="bilinear", align_corners=False) without antialiasing.
// Output position i samples the source at (i+0.5)·src/dst − 0.5, clamped to
// the first and last source positions.
package resample

import "math"

// Tap is one output position's two source positions and the weight of the second.
type Tap struct {
	I0, I1 int
	F      float32
}

// Taps returns, for each of dst output positions, where to sample a source of size src.
func Taps(src, dst int) []Tap {
	taps := make([]Tap, dst)
	scale := float64(src) / float64(dst)
	for i := range taps {
		s := min(max((float64(i)+0.5)*scale-0.5, 0), float64(src-1))
		i0 := min(int(math.Floor(s)), src-1)
		taps[i] = Tap{I0: i0, I1: min(i0+1, src-1), F: float32(s - float64(i0))}
	}
	return taps
}

// Matrix returns the dst×src matrix M, row-major, such that M·v resamples a
// vector v of length src to length dst. Resizing a 2-D map is then
// Mh · X · Mwᵀ, which a graph computes as matrix products.
func Matrix(src, dst int) []float32 {
	m := make([]float32, dst*src)
	for i, t := range Taps(src, dst) {
		m[i*src+t.I0] += 1 - t.F
		m[i*src+t.I1] += t.F
	}
	return m
}
