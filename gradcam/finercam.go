package gradcam

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
)

// FinerCAMMethod is Finer-CAM (Zhang et al., 2025), as pytorch-grad-cam
// computes it: Grad-CAM of a score that sets the target class c against
// the Compare classes whose logits are nearest to its own (the classes it
// is most easily taken for), so that the map shows what tells c apart from
// them rather than what they share:
// score = Σ_i p_i (y_c − Alpha·y_i) / (Σ_i p_i + 1e-9), over those classes
// i, where y are the logits and p = softmax(y) (the gradient flows through p
// too); then w_k = mean_ij ∂score/∂A_kij and map = Σ_k w_k A_k. The
// classes compared are chosen on the image, nearest first (ties: lower
// index first). It needs class targets ([Class], [Top]), not a [Score].
// Result.Scores stays the class's logit.
type FinerCAMMethod struct {
	// Alpha weighs the compared classes' logits (pytorch-grad-cam's
	// default is 1).
	Alpha float64
	// Compare is how many nearest classes to compare with (default 3:
	// pytorch-grad-cam's comparison_categories [1, 2, 3]).
	Compare int
}

// FinerCAM with pytorch-grad-cam's defaults: Alpha 1, the 3 nearest classes.
var FinerCAM Method = FinerCAMMethod{Alpha: 1, Compare: 3}

func (FinerCAMMethod) Name() string                     { return "finercam" }
func (FinerCAMMethod) Map(a, g *graph.Node) *graph.Node { return GradCAM.Map(a, g) }
func (FinerCAMMethod) terms(a, g *graph.Node) *graph.Node {
	return GradCAM.(termsMethod).terms(a, g)
}

// String names the settings, for the CAM's graph cache.
func (m FinerCAMMethod) String() string {
	return fmt.Sprintf("finercam(alpha=%g,compare=%d)", m.Alpha, m.Compare)
}

// scoreMethod is a gradient method that differentiates a score of its own,
// made from the logits [N,classes] and the target's classes [N,K], instead
// of the target's score.
type scoreMethod interface {
	Method
	score(logits, classes *graph.Node) *graph.Node
}

// score is the Finer-CAM score [N,K] of the classes [N,K].
func (m FinerCAMMethod) score(logits, classes *graph.Node) *graph.Node {
	c := logits.Shape().Dimensions[1]
	dt := logits.DType()
	l := graph.ExpandAxes(logits, 1) // [N,1,C]
	own := graph.OneHot(classes, c, dt)
	y := graph.ReduceSum(graph.Mul(own, l), 2) // [N,K]
	// Distances to the class's logit, the class itself out of reach.
	big := graph.MulScalar(own, 1e30)
	d := graph.Add(graph.StopGradient(graph.Abs(graph.Sub(l, graph.ExpandAxes(y, 2)))), big)
	p := graph.ExpandAxes(graph.Softmax(logits, 1), 1) // [N,1,C]
	var num, den *graph.Node
	for range min(max(m.Compare, 1), c-1) {
		oh := graph.OneHot(graph.ArgMin(d, 2, dtypes.Int32), c, dt) // [N,K,C]
		yi := graph.ReduceSum(graph.Mul(oh, l), 2)
		pi := graph.ReduceSum(graph.Mul(oh, p), 2)
		term := graph.Mul(pi, graph.Sub(y, graph.MulScalar(yi, m.Alpha)))
		if num == nil {
			num, den = term, pi
		} else {
			num, den = graph.Add(num, term), graph.Add(den, pi)
		}
		d = graph.Add(d, graph.MulScalar(oh, 1e30))
	}
	if num == nil { // One class: nothing to compare with.
		return y
	}
	return graph.Div(num, graph.AddScalar(den, 1e-9))
}
