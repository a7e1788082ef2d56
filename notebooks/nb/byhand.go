package nb

// Grad-CAM by hand, the steps 03-gradcam.ipynb teaches: each step's cell
// shows its function here with Source, and later cells call them, so that
// any cell runs first after a kernel restart. The gradcam package computes
// the same in one compiled graph; the notebook compares the two.

import (
	"fmt"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// CAMInputs holds what Grad-CAM is computed from, for one image, class and layer.
type CAMInputs struct {
	Layer   string
	Class   int
	Logits  []float32
	K, H, W int       // channels, height, width of the layer
	A, G    []float32 // activation and gradient ∂y^c/∂A, [K,H,W]
}

// ActivationAndGradient runs the model on x (a batch of one) and differentiates the logit of
// class (the predicted class when class < 0) with respect to layer's activation.
func ActivationAndGradient(m models.Model, r *models.Runner, x *tensors.Tensor, layer string, class int) CAMInputs {
	if class < 0 {
		class = Predict(r, x)[0].Class
	}
	nhwc := m.Input().Layout == models.NHWC
	exec := Must(r.Exec(fmt.Sprintf("steps:%s:%d", layer, class), func(scope *model.Scope, in []*graph.Node) []*graph.Node {
		logits, acts := m.Forward(scope, in[0], []string{layer})
		a := acts[0]
		score := graph.ReduceAllSum(graph.SliceAxis(logits, 1, graph.AxisElem(class))) // y^c
		g := graph.Gradient(score, a)[0]                                               // ∂y^c/∂A
		if nhwc {
			a, g = graph.TransposeAllAxes(a, 0, 3, 1, 2), graph.TransposeAllAxes(g, 0, 3, 1, 2)
		}
		return []*graph.Node{logits, a, g}
	}))
	outs := Must(exec.Exec(x))
	d := outs[1].Shape().Dimensions
	return CAMInputs{Layer: layer, Class: class, Logits: tensors.MustCopyFlatData[float32](outs[0]),
		K: d[1], H: d[2], W: d[3],
		A: tensors.MustCopyFlatData[float32](outs[1]), G: tensors.MustCopyFlatData[float32](outs[2])}
}

// Channel returns channel k of v [K,H,W] as a map.
func (s CAMInputs) Channel(v []float32, k int) heatmap.Map {
	n := s.H * s.W
	return heatmap.Map{Width: s.W, Height: s.H, Values: v[k*n : (k+1)*n]}
}

// Grid draws every channel of v [K,H,W] as a filter grid, each tile min-max scaled on its own.
func (s CAMInputs) Grid(v []float32, title string) *display.GridBuilder {
	maps := make([]heatmap.Map, s.K)
	for k := range maps {
		maps[k] = s.Channel(v, k)
	}
	return display.FilterGrid(maps...).Title(title)
}

// Weights returns α_k = mean over positions of the gradient, one per channel.
func (s CAMInputs) Weights() []float32 {
	w := make([]float32, s.K)
	for k := range w {
		var sum float64
		for _, g := range s.Channel(s.G, k).Values {
			sum += float64(g)
		}
		w[k] = float32(sum / float64(s.H*s.W))
	}
	return w
}

// WeightedSum returns Σ_k α_k A_k, signed, at the layer's resolution.
func (s CAMInputs) WeightedSum() heatmap.Map {
	w := s.Weights()
	out := make([]float32, s.H*s.W)
	for k := range s.K {
		for i, a := range s.Channel(s.A, k).Values {
			out[i] += w[k] * a
		}
	}
	return heatmap.Map{Width: s.W, Height: s.H, Values: out}
}

// ReLU keeps the positive values of m and sets the others to 0.
func ReLU(m heatmap.Map) heatmap.Map {
	out := make([]float32, len(m.Values))
	for i, v := range m.Values {
		out[i] = max(v, 0)
	}
	return heatmap.Map{Width: m.Width, Height: m.Height, Values: out}
}

// ByHand is Grad-CAM from steps 1-4, at the model's input size: the ReLU of the weighted sum,
// scaled to [0,1], resized to the input (bilinear, half-pixel centres) and scaled again.
func ByHand(m models.Model, s CAMInputs) heatmap.Map {
	in := m.Input()
	return Must(ReLU(s.WeightedSum()).Normalized().Resize(in.Width, in.Height)).Normalized()
}
