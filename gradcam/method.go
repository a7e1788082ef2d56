package gradcam

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
)

// Method turns a layer's activation and the gradient of the target score into
// a signed map. The CAM family differs only here: how the channels are weighted.
//
// Three kinds of methods go beyond this single forward and backward pass and
// implement an interface of their own on top of Method: [Perturbation]
// methods (Score-CAM, Ablation-CAM) run the model again on perturbed inputs or
// activations, [InputMethod]s (saliency, SmoothGrad, Integrated Gradients,
// guided backpropagation) differentiate with respect to the input instead of
// a layer, and [GuidedGradCAM] combines both. [Occlusion] and [RISE] run the
// model on masked copies of the input and need no layer, nor does
// [FullGrad], which adds bias-gradient terms to an input attribution;
// [FinerCAM] is Grad-CAM of a score that sets the class against its nearest
// classes; [SmoothGradCAMPlusPlus] averages the layers' gradient over noisy
// copies of the input, as SmoothGrad does at the input.
type Method interface {
	// Name is the method's name on the command line, e.g. "gradcam".
	Name() string
	// Map builds the signed map [N,h,w] from the activation a and gradient g,
	// both [N,C,h,w].
	Map(a, g *graph.Node) *graph.Node
}

// ChannelWeights is a Method whose map is Σ_k w_k A_k for channel weights w
// computed from the activation and gradient.
type ChannelWeights struct {
	// MethodName is returned by Name.
	MethodName string
	// Weights returns w [N,C] from a and g [N,C,h,w].
	Weights func(a, g *graph.Node) *graph.Node
}

// Name returns the method's name.
func (m ChannelWeights) Name() string { return m.MethodName }

// Map weights the activation's channels and sums them.
func (m ChannelWeights) Map(a, g *graph.Node) *graph.Node {
	return graph.Einsum("nc,nchw->nhw", m.Weights(a, g), a)
}

func (m ChannelWeights) terms(a, g *graph.Node) *graph.Node { return weighted(m.Weights(a, g), a) }

// Elementwise is a Method whose map is Σ_k T_k, a sum over channels of a
// per-element term T [N,C,h,w] of the activation and gradient.
type Elementwise struct {
	// MethodName is returned by Name.
	MethodName string
	// Term returns T [N,C,h,w] from a and g [N,C,h,w].
	Term func(a, g *graph.Node) *graph.Node
}

// Name returns the method's name.
func (m Elementwise) Name() string { return m.MethodName }

// Map sums the term over channels.
func (m Elementwise) Map(a, g *graph.Node) *graph.Node { return graph.ReduceSum(m.Term(a, g), 1) }

func (m Elementwise) terms(a, g *graph.Node) *graph.Node { return m.Term(a, g) }

// termsMethod is a method whose map is the sum over channels of a matrix
// T [N,C,h,w] of the activation and gradient (w_k A_k for channel weights):
// with [Builder.EigenSmooth] the map is FirstComponent(T) instead.
type termsMethod interface {
	Method
	terms(a, g *graph.Node) *graph.Node
}

// weighted is w_k A_k [N,C,h,w] for channel weights w [N,C] and a [N,C,h,w].
func weighted(w, a *graph.Node) *graph.Node {
	d := w.Shape().Dimensions
	return graph.Mul(graph.Reshape(w, d[0], d[1], 1, 1), a)
}

// Projection is a Method whose map is the projection of a per-element matrix
// M [N,C,h,w] of the activation and gradient on its first principal
// component (see [FirstComponent] for the definition and the sign convention).
type Projection struct {
	// MethodName is returned by Name.
	MethodName string
	// Matrix returns M [N,C,h,w] from a and g [N,C,h,w].
	Matrix func(a, g *graph.Node) *graph.Node
	// GradientFree says that Matrix ignores g: no gradient is computed
	// (Matrix then gets nil) and the layer need not feed the output.
	GradientFree bool
}

// Name returns the method's name.
func (m Projection) Name() string { return m.MethodName }

// Map projects M on its first principal component.
func (m Projection) Map(a, g *graph.Node) *graph.Node { return FirstComponent(m.Matrix(a, g)) }

func (m Projection) needsGradient() bool { return !m.GradientFree }

// needsGradient reports whether m's map uses the gradient: only a method
// that says otherwise (implementing needsGradient) is spared computing it.
func needsGradient(m Method) bool {
	if gm, ok := m.(interface{ needsGradient() bool }); ok {
		return gm.needsGradient()
	}
	return true
}

// The CAM family. A is the layer activation [C,h,w] of one image, g = ∂score/∂A,
// k runs over channels and ij over positions. Every map is signed here; the
// ReLU and normalisation of the package doc come after (see [Builder.ReLU] and
// [Builder.Normalize]). The epsilons are pytorch-grad-cam's, so maps compare
// with it exactly.
var (
	// GradCAM weights each channel by its spatially averaged gradient
	// (Selvaraju et al., 2017): w_k = mean_ij g_kij; map = Σ_k w_k A_k.
	GradCAM Method = ChannelWeights{
		MethodName: "gradcam",
		Weights:    func(_, g *graph.Node) *graph.Node { return graph.ReduceMean(g, 2, 3) },
	}

	// HiResCAM keeps the gradient's spatial detail (Draelos and Carin, 2020):
	// map = Σ_k g_k ⊙ A_k. For a model whose score is linear in the pooled
	// activation it is exactly the score's decomposition over positions.
	HiResCAM Method = Elementwise{
		MethodName: "hirescam",
		Term:       graph.Mul,
	}

	// GradCAMElementwise clips each element's contribution before summing:
	// map = Σ_k relu(g_k ⊙ A_k).
	GradCAMElementwise Method = Elementwise{
		MethodName: "gradcam-elementwise",
		Term:       func(a, g *graph.Node) *graph.Node { return activation.Relu(graph.Mul(g, a)) },
	}

	// GradCAMPlusPlus (Chattopadhay et al., 2018):
	// α_kij = g² / (2g² + (Σ_ij A_k) g³ + 1e-6), and α = 0 where g = 0;
	// w_k = Σ_ij α_kij relu(g_kij); map = Σ_k w_k A_k.
	GradCAMPlusPlus Method = ChannelWeights{
		MethodName: "gradcam++",
		Weights:    func(a, g *graph.Node) *graph.Node { return plusPlusWeights(a, powers(g, 3)) },
	}

	// XGradCAM (Fu et al., 2020): w_k = Σ_ij g_kij A_kij / (Σ_ij A_kij + 1e-7);
	// map = Σ_k w_k A_k.
	XGradCAM Method = ChannelWeights{
		MethodName: "xgradcam",
		Weights: func(a, g *graph.Node) *graph.Node {
			sumA := graph.ReduceAndKeep(a, graph.ReduceSum, 2, 3)
			return graph.ReduceSum(graph.Div(graph.Mul(g, a), graph.AddScalar(sumA, 1e-7)), 2, 3)
		},
	}

	// LayerCAM (Jiang et al., 2021): map = Σ_k relu(g_k) ⊙ A_k.
	LayerCAM Method = Elementwise{
		MethodName: "layercam",
		Term:       func(a, g *graph.Node) *graph.Node { return graph.Mul(activation.Relu(g), a) },
	}

	// EigenCAM (Muhammad and Yeasin, 2020) projects the activation on its first
	// principal component: map = FirstComponent(A). It uses no gradient, so
	// it does not depend on the target class.
	EigenCAM Method = Projection{
		MethodName:   "eigencam",
		Matrix:       func(a, _ *graph.Node) *graph.Node { return a },
		GradientFree: true,
	}

	// EigenGradCAM projects g ⊙ A on its first principal component:
	// map = FirstComponent(g ⊙ A).
	EigenGradCAM Method = Projection{
		MethodName: "eigengradcam",
		Matrix:     graph.Mul,
	}
)

// plusPlusWeights are Grad-CAM++'s channel weights [N,C] from the
// activation a and d = [D₁, D₂, D₃], the gradient's first three powers (at
// the image, or averaged over noisy copies for [SmoothGradCAMPlusPlus]):
// α = D₂ / (2D₂ + (Σ_ij A_k) D₃ + 1e-6), 0 where D₂ = 0;
// w_k = Σ_ij α_kij relu(D₁_kij).
func plusPlusWeights(a *graph.Node, d []*graph.Node) *graph.Node {
	sumA := graph.ReduceAndKeep(a, graph.ReduceSum, 2, 3)
	alpha := graph.Div(d[1], graph.AddScalar(graph.Add(graph.MulScalar(d[1], 2), graph.Mul(sumA, d[2])), 1e-6))
	alpha = graph.Where(graph.Equal(d[1], graph.ZerosLike(d[1])), graph.ZerosLike(alpha), alpha)
	return graph.ReduceSum(graph.Mul(alpha, activation.Relu(d[0])), 2, 3)
}

// powers returns g, g², ..., gᵐ.
func powers(g *graph.Node, m int) []*graph.Node {
	out := []*graph.Node{g}
	for len(out) < m {
		out = append(out, graph.Mul(out[len(out)-1], g))
	}
	return out
}

// Methods lists the methods by name, for command lines.
var Methods = map[string]Method{}

func init() {
	for _, m := range []Method{
		GradCAM, HiResCAM, GradCAMElementwise, GradCAMPlusPlus, XGradCAM, LayerCAM, EigenCAM, EigenGradCAM,
		ScoreCAM, AblationCAM, SSCAM, ISCAM, FasterScoreCAM,
		Saliency, SmoothGrad, IntegratedGradients, GuidedBackprop, GuidedGradCAM,
		Occlusion, RISE, FinerCAM, FullGrad,
		SmoothGradCAMPlusPlus, KPCACAM,
	} {
		Methods[m.Name()] = m
	}
}

// MethodNames returns the names in [Methods], sorted.
func MethodNames() []string { return slices.Sorted(maps.Keys(Methods)) }

// MethodByName returns the method called name; an unknown name is an error
// that lists the known ones.
func MethodByName(name string) (Method, error) {
	if m, ok := Methods[name]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("unknown method %q; known methods: %s", name, strings.Join(MethodNames(), ", "))
}
