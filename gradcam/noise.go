package gradcam

import (
	"fmt"
	"math"

	"github.com/convlens/convlens/internal/rng"
)

// NormalNoise returns n standard normal samples, reproducible from seed in
// any language, so that noisy methods ([SmoothGradMethod]) and the metrics'
// random baselines can be checked against an independent implementation.
//
// Sample i is z_i = sqrt(−2 ln u₁) · cos(2π u₂) (Box–Muller, cosine branch
// only) with u₁ = U(2i) and u₂ = U(2i+1), where U(j) = ((s_j >> 11) + 0.5) / 2⁵³
// and s_j is the (j+1)-th output of SplitMix64 started at state seed:
// state = seed + (j+1)·0x9E3779B97F4A7C15 (mod 2⁶⁴), then
// z = (state ⊕ state>>30)·0xBF58476D1CE4E5B9, z = (z ⊕ z>>27)·0x94D049BB133111EB,
// s_j = z ⊕ z>>31. The arithmetic is float64, the result rounded to float32.
func NormalNoise(seed uint64, n int) ([]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("gradcam.NormalNoise: n=%d samples is negative", n)
	}
	out := make([]float32, n)
	normalNoiseAt(out, seed, 0)
	return out, nil
}

// normalNoiseAt fills dst with samples first, first+1, ... of
// NormalNoise(seed, ·), so that a slice of a long stream costs its own size.
func normalNoiseAt(dst []float32, seed uint64, first int) {
	for i := range dst {
		j := uint64(first + i)
		u1, u2 := Uniform(seed, 2*j), Uniform(seed, 2*j+1)
		dst[i] = float32(math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2))
	}
}

// Uniform returns U(j) of [NormalNoise]: a uniform sample in (0, 1), the j-th of the stream seed.
func Uniform(seed, j uint64) float64 {
	return (float64(rng.At(seed, j)>>11) + 0.5) / (1 << 53)
}
