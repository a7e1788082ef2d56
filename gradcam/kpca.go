package gradcam

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/core/graph"
)

// KPCACAMMethod is KPCA-CAM (Karmani et al., 2024), as pytorch-grad-cam's
// KPCA_CAM computes it: EigenCAM with kernel PCA. X is the activation A as
// h·w observations of C channels, centred per channel (as for
// [FirstComponent]); K_pq = k(x_p, x_q) is the kernel matrix of the
// positions, double-centred, K̃ = K − 1K − K1 + 1K1 (1 the matrix of
// 1/(h·w)); with λ the algebraically largest eigenvalue of K̃ and v its unit
// eigenvector, map = v·sqrt(λ), reshaped to h×w: the first component of
// sklearn's KernelPCA(n_components=1, kernel, gamma).fit_transform(X), which
// pytorch-grad-cam calls. It uses no gradient, so it does not depend on the
// target class.
//
// The sign is [FirstComponent]'s (the map correlates positively with the
// channel sum of A) where sklearn makes the eigenvector's largest entry
// positive. A sigmoid kernel is not positive semi-definite: K̃ may have a
// negative eigenvalue larger in magnitude than λ, and its eigenvector is not
// the component; the eigenvector is found as for FirstComponent, on K̃
// shifted by its Frobenius norm so that no eigenvalue is negative. Where λ ≤
// 0 the map is zero (sklearn fails). The kernel matrix is (h·w)×(h·w): the
// cost grows as (h·w)³.
type KPCACAMMethod struct {
	// Kernel is k: "sigmoid" (the default, also for ""), tanh(γ x·y + 1);
	// "rbf", exp(−γ‖x − y‖²); "poly", (γ x·y + 1)³; "cosine",
	// x·y / (‖x‖‖y‖) (0 for a zero vector); "linear", x·y, with which the
	// map is EigenCAM's. The constants 1 and 3 are sklearn's coef0 and
	// degree, which pytorch-grad-cam does not set.
	Kernel string
	// Gamma is γ (sigmoid, rbf, poly); 0 means 1/C (sklearn's gamma=None,
	// pytorch-grad-cam's default).
	Gamma float64
}

// KPCACAM with pytorch-grad-cam's defaults: sigmoid kernel, γ = 1/C.
var KPCACAM Method = KPCACAMMethod{}

// kernels are the values of KPCACAMMethod.Kernel.
var kernels = []string{"sigmoid", "rbf", "poly", "cosine", "linear"}

func (KPCACAMMethod) Name() string        { return "kpcacam" }
func (KPCACAMMethod) needsGradient() bool { return false }

func (m KPCACAMMethod) validate() error {
	if m.Kernel != "" && !slices.Contains(kernels, m.Kernel) {
		return fmt.Errorf("kpcacam: unknown kernel %q; known kernels: %v", m.Kernel, kernels)
	}
	if m.Gamma < 0 || math.IsNaN(m.Gamma) || math.IsInf(m.Gamma, 0) {
		return fmt.Errorf("kpcacam: gamma %v: it must be finite and positive (0 for 1/C)", m.Gamma)
	}
	return nil
}

// Map projects the activation on its first kernel principal component.
func (m KPCACAMMethod) Map(a, _ *graph.Node) *graph.Node {
	x := centred(a) // [N,C,P]
	gamma := m.Gamma
	if gamma == 0 {
		gamma = 1 / float64(a.Shape().Dimensions[1])
	}
	dot := graph.Einsum("ncp,ncq->npq", x, x)
	sq := graph.ReduceSum(graph.Square(x), 1) // [N,P]
	var k *graph.Node
	switch m.Kernel {
	case "", "sigmoid":
		k = graph.Tanh(graph.AddScalar(graph.MulScalar(dot, gamma), 1))
	case "rbf":
		d2 := graph.Sub(graph.Add(graph.ExpandAxes(sq, 2), graph.ExpandAxes(sq, 1)), graph.MulScalar(dot, 2))
		k = graph.Exp(graph.MulScalar(graph.Max(d2, graph.ZerosLike(d2)), -gamma))
	case "poly":
		b := graph.AddScalar(graph.MulScalar(dot, gamma), 1)
		k = graph.Mul(graph.Square(b), b)
	case "cosine":
		norm := graph.Sqrt(sq)
		norm = graph.Where(graph.Equal(norm, graph.ZerosLike(norm)), graph.OnesLike(norm), norm)
		k = graph.Div(dot, graph.Mul(graph.ExpandAxes(norm, 2), graph.ExpandAxes(norm, 1)))
	case "linear":
		k = dot
	default:
		panic(m.validate()) // Builder.Done refused it
	}
	k = graph.Sub(k, graph.ReduceAndKeep(k, graph.ReduceMean, 1))
	k = graph.Sub(k, graph.ReduceAndKeep(k, graph.ReduceMean, 2)) // double-centred
	v, lambda := topSymmetricEigenpair(k)
	scale := graph.Sqrt(graph.Max(lambda, graph.ZerosLike(lambda)))
	return alignSign(graph.Mul(v, graph.ExpandAxes(scale, 1)), a)
}

// String names the settings, for the CAM's graph cache.
func (m KPCACAMMethod) String() string {
	return fmt.Sprintf("kpcacam(kernel=%q,gamma=%g)", m.Kernel, m.Gamma)
}
