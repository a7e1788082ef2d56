package gradcam

import (
	"testing"

	"github.com/convlens/convlens/models/backend"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
)

// Guided backpropagation finds the ReLUs by their shape in the graph: the
// backend's fused ReLU (what the pure-Go backend builds) or max(x, 0) (the
// decomposed form other backends get).
func TestIsReLU(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(b, "relu")
	defer g.Finalize()
	x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 2, 3))
	for name, c := range map[string]struct {
		node *graph.Node
		want bool
	}{
		"activation.Relu":       {activation.Relu(x), true},
		"fused ReLU":            {graph.BackendFusedActivation(x, compute.ActivationConfig{Type: compute.ActivationRelu}), true},
		"max(x, 0)":             {graph.Max(x, graph.ZerosLike(x)), true},
		"max(0, x)":             {graph.Max(graph.ZerosLike(x), x), true},
		"max(x, scalar 0)":      {graph.Max(x, graph.ScalarZero(g, dtypes.Float32)), true},
		"max(x, 1)":             {graph.Max(x, graph.OnesLike(x)), false},
		"leaky ReLU":            {activation.LeakyRelu(x), false},
		"fused sigmoid":         {graph.BackendFusedActivation(x, compute.ActivationConfig{Type: compute.ActivationSigmoid}), false},
		"max of two parameters": {graph.Max(x, graph.Parameter(g, "y", shapes.Make(dtypes.Float32, 2, 3))), false},
	} {
		if got := isReLU(c.node); got != c.want {
			t.Errorf("%s: isReLU = %v, want %v (%s)", name, got, c.want, c.node)
		}
	}
}
