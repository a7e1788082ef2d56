package gradcam

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// SmoothGradCAMPlusPlusMethod is Smooth Grad-CAM++ (Omeiza et al., 2019):
// Grad-CAM++ with the gradient's powers averaged over S noisy copies
// x + Std·ε_s of the image, ε_s standard normal noise from
// [NormalNoise](Seed) laid out [S, N, ...x's dims] (as [SmoothGradMethod]'s):
// with g_s = ∂score/∂A at copy s and D_p = (1/S) Σ_s g_sᵖ,
//
//	α_kij = D₂ / (2D₂ + (Σ_ab A_kab) D₃ + 1e-6), and α = 0 where D₂ = 0;
//	w_k = Σ_ij α_kij relu(D₁_kij); map = Σ_k w_k A_k,
//
// A the activation of the image itself. The classes explained are chosen on
// the image itself. One point ([CAM.Passes], [Builder.PointsPerCall],
// [Builder.MaxPasses]) per copy; with Samples 1 and Std 0 it is
// [GradCAMPlusPlus].
//
// Defaults and departures from torch-cam's SmoothGradCAMpp, the reference
// implementation: its defaults are kept (4 samples, std 0.3 in the model's
// input space, not relative to the image's range as SmoothGrad's Sigma is),
// but not three of its choices, where this follows the paper: torch-cam
// weighs α by relu of the last noisy copy's gradient instead of the mean
// gradient D₁; its denominator has Σ_ab D₃_kab A_kab, one number per
// channel, instead of (Σ_ab A_kab)·D₃_kij; and its ε is 1e-8 (1e-6 here, as
// [GradCAMPlusPlus], so that one noise-free copy is Grad-CAM++). Its noise
// comes from torch's global generator; here it is seeded and reproducible.
// Like torch-cam, α's numerator is D₂, as in Grad-CAM++, where the paper's
// equation prints D₁ (torch-cam's docs note it): with D₁, one noise-free
// copy would not be Grad-CAM++.
type SmoothGradCAMPlusPlusMethod struct {
	// Samples is S, the noisy copies of each image (at least 1).
	Samples int
	// Std is the noise's standard deviation, in the model's input space (≥ 0).
	Std float64
	// Seed selects the noise.
	Seed uint64
}

// SmoothGradCAMPlusPlus with torch-cam's defaults: 4 samples, std 0.3, seed 0.
var SmoothGradCAMPlusPlus Method = SmoothGradCAMPlusPlusMethod{Samples: 4, Std: 0.3}

func (SmoothGradCAMPlusPlusMethod) Name() string { return "smoothgradcam++" }

// Map is the method at a single point, the image itself: Grad-CAM++.
func (m SmoothGradCAMPlusPlusMethod) Map(a, g *graph.Node) *graph.Node {
	return graph.ReduceSum(m.terms(a, g), 1)
}

func (m SmoothGradCAMPlusPlusMethod) terms(a, g *graph.Node) *graph.Node {
	return m.momentTerms(a, powers(g, 3))
}

func (SmoothGradCAMPlusPlusMethod) moments() int { return 3 }

func (SmoothGradCAMPlusPlusMethod) momentTerms(a *graph.Node, d []*graph.Node) *graph.Node {
	return weighted(plusPlusWeights(a, d), a)
}

func (m SmoothGradCAMPlusPlusMethod) samples() int { return m.Samples }

func (m SmoothGradCAMPlusPlusMethod) pointInput(first, count, img, n, total int, dims []int) *tensors.Tensor {
	return noiseInput(m.Seed, first, count, img, n, total, dims)
}

// points are x + Std·ε.
func (m SmoothGradCAMPlusPlusMethod) points(x, noise *graph.Node) *graph.Node {
	return noisyPoints(x, noise, graph.Scalar(x.Graph(), x.DType(), m.Std))
}

func (m SmoothGradCAMPlusPlusMethod) validate() error {
	if m.Samples < 1 {
		return fmt.Errorf("smoothgradcam++: %d samples: it needs at least 1", m.Samples)
	}
	if m.Std < 0 || math.IsNaN(m.Std) || math.IsInf(m.Std, 0) {
		return fmt.Errorf("smoothgradcam++: noise std %v: it must be finite and at least 0", m.Std)
	}
	return nil
}
