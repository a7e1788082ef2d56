package gradcam

import (
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/convlens/convlens/models/backend"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
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
	xi := graph.Parameter(g, "xi", shapes.Make(dtypes.Int32, 2, 3))
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
		// Checked by node type and inputs: which side the zero is on, how it
		// is broadcast, and its value.
		"max(scalar 0, x)":        {graph.Max(graph.ScalarZero(g, dtypes.Float32), x), true},
		"max(x, -0)":              {graph.Max(x, graph.Scalar(g, dtypes.Float32, math.Copysign(0, -1))), true},
		"max(x, reshaped [0])":    {graph.Max(x, graph.BroadcastToDims(graph.Reshape(graph.Const(g, []float32{0}), 1, 1), 2, 3)), true},
		"int32 max(x, 0)":         {graph.Max(xi, graph.ZerosLike(xi)), true},
		"max(x, 0.5)":             {graph.Max(x, graph.Scalar(g, dtypes.Float32, 0.5)), false},
		"max(x, broadcast 0.5)":   {graph.Max(x, graph.BroadcastToDims(graph.Scalar(g, dtypes.Float32, 0.5), 2, 3)), false},
		"max(0.5, x)":             {graph.Max(graph.Scalar(g, dtypes.Float32, 0.5), x), false},
		"max(x, NaN)":             {graph.Max(x, graph.Scalar(g, dtypes.Float32, math.NaN())), false},
		"max(x, x-x)":             {graph.Max(x, graph.Sub(x, x)), false},
		"max(x, non-zero tensor)": {graph.Max(x, graph.Const(g, [][]float32{{0, 0, 0}, {0, 0, 1}})), false},
		"min(x, 0)":               {graph.Min(x, graph.ZerosLike(x)), false},
		"fused tanh":              {graph.BackendFusedActivation(x, compute.ActivationConfig{Type: compute.ActivationTanh}), false},
		"fused none":              {graph.BackendFusedActivation(x, compute.ActivationConfig{Type: compute.ActivationNone}), false},
	} {
		if got := isReLU(c.node); got != c.want {
			t.Errorf("%s: isReLU = %v, want %v (%s)", name, got, c.want, c.node)
		}
	}
}

// The pure-Go backend fuses activation.Relu into one FusedActivation node
// (unless $GOMLX_FUSION turns fusion off), so the fused case above is the
// one its models hit. The gradient of a
// fused ReLU (FusedActivationVJP, with the same ReLU config) is no ReLU.
func TestIsReLUFusedOnGoBackend(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(b, "fused")
	defer g.Finalize()
	x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 2, 3))
	if !b.Capabilities().Operations[compute.OpTypeFusedActivation] {
		t.Skipf("backend %s has no fused activation", b.Name())
	}
	if on, err := strconv.ParseBool(os.Getenv(graph.FusionEnv)); err == nil && !on {
		t.Skipf("fused ops disabled by $%s", graph.FusionEnv)
	}
	y := activation.Relu(x)
	if y.Type() != graph.NodeTypeFusedActivation {
		t.Fatalf("activation.Relu on %s built %s, want a FusedActivation node", b.Name(), y)
	}
	if !isReLU(y) {
		t.Errorf("fused activation.Relu not recognised: %s", y)
	}
	if b.Capabilities().Operations[compute.OpTypeFusedActivationVJP] {
		vjp := graph.BackendFusedActivationVJP(y, x, graph.OnesLike(y), compute.ActivationConfig{Type: compute.ActivationRelu})
		if isReLU(vjp) {
			t.Errorf("ReLU's VJP taken for a ReLU: %s", vjp)
		}
	}
}

// fusedActivationType reads the config GoMLX keeps in the fused node's
// unexported inputs; this fails first if a GoMLX upgrade changes them.
func TestFusedActivationType(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(b, "fusedtype")
	defer g.Finalize()
	x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 2, 3))
	for _, act := range []compute.ActivationType{compute.ActivationNone, compute.ActivationRelu, compute.ActivationSigmoid,
		compute.ActivationLeakyRelu, compute.ActivationTanh, compute.ActivationGelu} {
		n := graph.BackendFusedActivation(x, compute.ActivationConfig{Type: act})
		got, ok := fusedActivationType(n)
		if !ok || got != act {
			t.Errorf("fusedActivationType(fused %s) = %s, %v; want %s, true", act, got, ok, act)
		}
	}
	for _, n := range []*graph.Node{x, graph.Max(x, graph.ZerosLike(x)), graph.Tanh(x)} {
		if _, ok := fusedActivationType(n); ok {
			t.Errorf("fusedActivationType(%s) = ok, want not ok", n)
		}
	}
}

// isZeroConstant accepts a one-element constant of rank 0 or 1 holding a
// real zero of any dtype; rank ≥ 2 one-element constants stay rejected, as
// they were when the check compared printed values.
func TestIsZeroConstant(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(b, "zero")
	defer g.Finalize()
	for name, c := range map[string]struct {
		node *graph.Node
		want bool
	}{
		"float32 0":         {graph.Const(g, float32(0)), true},
		"float64 -0":        {graph.Const(g, math.Copysign(0, -1)), true},
		"float16 0":         {graph.Const(g, float16.FromFloat32(0)), true},
		"float16 -0":        {graph.Const(g, float16.FromFloat32(float32(math.Copysign(0, -1)))), true},
		"bfloat16 0":        {graph.Const(g, bfloat16.FromFloat32(0)), true},
		"int64 0":           {graph.Const(g, int64(0)), true},
		"uint8 0":           {graph.Const(g, uint8(0)), true},
		"[1] 0":             {graph.Const(g, []float32{0}), true},
		"broadcast 0":       {graph.BroadcastToDims(graph.Const(g, float32(0)), 4, 5), true},
		"reshaped [1] 0":    {graph.Reshape(graph.Const(g, []int32{0}), 1, 1), true},
		"float32 1e-45":     {graph.Const(g, float32(1e-45)), false},
		"float16 1":         {graph.Const(g, float16.FromFloat32(1)), false},
		"bfloat16 0.5":      {graph.Const(g, bfloat16.FromFloat32(0.5)), false},
		"float32 NaN":       {graph.Const(g, float32(math.NaN())), false},
		"int32 -1":          {graph.Const(g, int32(-1)), false},
		"bool false":        {graph.Const(g, false), false},
		"[2] zeros":         {graph.Const(g, []float32{0, 0}), false},
		"[1,1] 0":           {graph.Const(g, [][]float32{{0}}), false},
		"parameter":         {graph.Parameter(g, "p", shapes.Make(dtypes.Float32)), false},
		"0 times parameter": {graph.Mul(graph.Const(g, float32(0)), graph.Parameter(g, "q", shapes.Make(dtypes.Float32))), false},
	} {
		if got := isZeroConstant(c.node); got != c.want {
			t.Errorf("%s: isZeroConstant = %v, want %v (%s)", name, got, c.want, c.node)
		}
	}
}
