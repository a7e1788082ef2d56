package gradcam

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
)

// Iterations of the principal-component search; see FirstComponent.
const (
	eigenSquarings   = 16
	eigenRefinements = 3
)

// FirstComponent projects each image's matrix M [N,C,h,w] on its first
// principal component, as pytorch-grad-cam's EigenCAM does, and returns the
// projection [N,h,w]:
//
//   - X is M seen as h·w observations of C channels, [h·w, C], centred: each
//     channel's mean over positions is subtracted.
//   - v is the unit right singular vector of X with the largest singular
//     value (the top eigenvector of XᵀX), and the map is X·v, reshaped to h×w.
//
// Sign convention. v is defined up to its sign, and SVD routines pick one
// arbitrarily. Here the sign is chosen so that the projection correlates
// positively with the channel sum of M: Σ_ij (X·v)_ij · (Σ_k M_kij) ≥ 0, i.e.
// the component points the way the activation (for EigenCAM) or the
// gradient-weighted activation (for EigenGradCAM) grows on average. An exact
// zero keeps the sign the iteration below produced, which is deterministic.
//
// The eigenvector is computed in the graph from the Gram matrix of the
// smaller side (C×C, or (h·w)×(h·w) when there are fewer positions than
// channels): 16 normalised squarings (the Gram matrix raised to the power
// 2^16, so the top component dominates unless the top two eigenvalues are
// within about 1e-4 relative of each other, where the component is not
// well defined anyway), then the column of largest norm, then 3 power
// iterations with the Gram matrix itself to remove the rounding error of the
// squarings. The projection's magnitude is that of the SVD's: σ₁·u₁.
func FirstComponent(m *graph.Node) *graph.Node {
	dims := m.Shape().Dimensions
	x := centred(m)   // [N,C,P]
	var v *graph.Node // [N,C], unit
	if c, p := dims[1], dims[2]*dims[3]; c <= p {
		v = topEigenvector(graph.Einsum("ncp,ndp->ncd", x, x))
	} else {
		u := topEigenvector(graph.Einsum("ncp,ncq->npq", x, x)) // [N,P]
		v = unit(graph.Einsum("ncp,np->nc", x, u))
	}
	return alignSign(graph.Einsum("ncp,nc->np", x, v), m)
}

// centred is each image's matrix m [N,C,h,w] as h·w observations of C
// channels, [N,C,h·w], each channel's mean over the positions subtracted.
func centred(m *graph.Node) *graph.Node {
	dims := m.Shape().Dimensions
	x := graph.Reshape(m, dims[0], dims[1], dims[2]*dims[3])
	return graph.Sub(x, graph.ReduceAndKeep(x, graph.ReduceMean, 2))
}

// alignSign returns the projection proj [N,P] of each image's matrix
// m [N,C,h,w] (P = h·w), negated where it correlates negatively with the
// channel sum of m, as [N,h,w]: FirstComponent's sign convention.
func alignSign(proj, m *graph.Node) *graph.Node {
	dims := m.Shape().Dimensions
	n, c, h, w := dims[0], dims[1], dims[2], dims[3]
	sum := graph.ReduceSum(graph.Reshape(m, n, c, h*w), 1) // [N,P]
	corr := graph.ReduceAndKeep(graph.Mul(proj, sum), graph.ReduceSum, 1)
	sign := graph.Where(graph.LessThan(corr, graph.ZerosLike(corr)),
		graph.OnesLike(corr), graph.ZerosLike(corr))
	proj = graph.Mul(proj, graph.OneMinus(graph.MulScalar(sign, 2)))
	return graph.Reshape(proj, n, h, w)
}

// topSymmetricEigenpair returns the unit eigenvector [N,D] of the
// algebraically largest eigenvalue of each symmetric matrix g [N,D,D],
// which need not be positive semi-definite, and that eigenvalue [N].
// topEigenvector's iterations find the eigenvalue of largest magnitude, a
// negative one when it outweighs the largest, so they run on the shifted
// g + ‖g‖_F·I instead: it has g's eigenvectors, in the same order, and no
// negative eigenvalue (|λ| ≤ ‖g‖_F for every eigenvalue λ of g). The
// eigenvalue is the Rayleigh quotient vᵀgv of g itself.
func topSymmetricEigenpair(g *graph.Node) (v, lambda *graph.Node) {
	d := g.Shape().Dimensions[1]
	eye := graph.ExpandAxes(graph.ConvertDType(graph.Diagonal(g.Graph(), d), g.DType()), 0) // [1,D,D]
	norm := graph.Sqrt(graph.ReduceAndKeep(graph.Square(g), graph.ReduceSum, 1, 2))         // [N,1,1]
	v = topEigenvector(graph.Add(g, graph.Mul(norm, eye)))
	return v, graph.ReduceSum(graph.Mul(v, graph.Einsum("nij,nj->ni", g, v)), 1)
}

// topEigenvector returns the unit eigenvector of the largest eigenvalue of
// each symmetric positive semi-definite matrix g [N,D,D], as [N,D].
func topEigenvector(g *graph.Node) *graph.Node {
	d := g.Shape().Dimensions[1]
	eye := graph.ExpandAxes(graph.ConvertDType(graph.Diagonal(g.Graph(), d), g.DType()), 0) // [1,D,D]
	trace := func(x *graph.Node) *graph.Node {
		return graph.ExpandAxes(graph.ReduceSum(graph.Mul(x, eye), 1, 2), 1, 2)
	}
	tiny := 1e-30
	m := graph.Div(g, graph.AddScalar(trace(g), tiny))
	for range eigenSquarings {
		m = graph.Einsum("nij,njk->nik", m, m)
		m = graph.Div(m, graph.AddScalar(trace(m), tiny))
	}
	// m ≈ v vᵀ: its column j is v·v_j, largest where v_j² = m_jj is.
	diag := graph.ReduceSum(graph.Mul(m, eye), 2) // [N,D]
	pick := graph.OneHot(graph.ArgMax(diag, 1, dtypes.Int32), d, g.DType())
	v := unit(graph.Einsum("nij,nj->ni", m, pick))
	for range eigenRefinements {
		v = unit(graph.Einsum("nij,nj->ni", g, v))
	}
	return v
}

// unit scales each row of v [N,D] to unit length (a zero row stays zero).
func unit(v *graph.Node) *graph.Node {
	norm := graph.Sqrt(graph.ReduceAndKeep(graph.Square(v), graph.ReduceSum, 1))
	return graph.Div(v, graph.AddScalar(norm, 1e-30))
}
