package fastconv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// convConfig is one ConvGeneral call: shapes, axes and parameters.
type convConfig struct {
	dtype                           dtypes.DType
	inputDims, kernelDims           []int
	axes                            compute.ConvolveAxesConfig
	strides                         []int
	paddings                        [][2]int
	inputDilations, kernelDilations []int
	channelGroups, batchGroups      int
}

func (c convConfig) String() string {
	return fmt.Sprintf("%s input=%v kernel=%v axes=%+v strides=%v paddings=%v inputDilations=%v kernelDilations=%v groups=%d batchGroups=%d",
		c.dtype, c.inputDims, c.kernelDims, c.axes, c.strides, c.paddings, c.inputDilations, c.kernelDilations,
		c.channelGroups, c.batchGroups)
}

// conv builds the convolution in a graph.
func (c convConfig) conv(x, kernel *graph.Node) *graph.Node {
	return graph.ConvGeneral(x, kernel, c.axes, c.strides, c.paddings, c.inputDilations, c.kernelDilations,
		c.channelGroups, c.batchGroups)
}

// nchw is the layout of ONNX and PyTorch convolutions: NCHW input, OIHW kernel.
var nchw = compute.ConvolveAxesConfig{
	InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
	KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
	OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3},
}

// randomLayout returns the positions of the batch (or output channels), channels (or input
// channels) and spatial axes of a tensor: channels first, channels last or any permutation.
func randomLayout(rng *rand.Rand, spatialRank int) (batch, channels int, spatial []int) {
	perm := make([]int, spatialRank+2)
	for i := range perm {
		perm[i] = i
	}
	switch rng.IntN(3) {
	case 0: // Channels first: NCHW / OIHW.
	case 1: // Channels last: NHWC / HWIO.
		perm = append([]int{0, spatialRank + 1}, perm[1:spatialRank+1]...)
	default:
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	}
	return perm[0], perm[1], perm[2:]
}

// randomConfig returns a random convolution whose output is not empty.
func randomConfig(rng *rand.Rand) convConfig {
	for {
		c := convConfig{dtype: dtypes.Float32, channelGroups: 1, batchGroups: 1}
		if rng.IntN(3) == 0 {
			c.dtype = dtypes.Float64
		}
		spatialRank := 1 + rng.IntN(2)
		if rng.IntN(8) == 0 {
			spatialRank = 3
		}
		batch, inChannels, outChannels := 1+rng.IntN(3), 1+rng.IntN(4), 1+rng.IntN(4)
		maxSize := 7
		if rng.IntN(3) == 0 && spatialRank < 3 { // Large enough for runs of contiguous elements.
			inChannels, maxSize = 8+rng.IntN(24), 24
		}
		groups := 1
		switch rng.IntN(6) {
		case 0:
			groups = 2 + rng.IntN(2)
			c.channelGroups = groups
		case 1: // Depthwise.
			groups, inChannels = 2+rng.IntN(4), 1
			c.channelGroups = groups
		case 2:
			groups = 2 + rng.IntN(2)
			c.batchGroups = groups
		}

		c.axes.InputBatch, c.axes.InputChannels, c.axes.InputSpatial = randomLayout(rng, spatialRank)
		c.axes.KernelOutputChannels, c.axes.KernelInputChannels, c.axes.KernelSpatial = randomLayout(rng, spatialRank)
		c.axes.OutputBatch, c.axes.OutputChannels, c.axes.OutputSpatial = randomLayout(rng, spatialRank)
		if c.batchGroups > 1 {
			// The Go backend's ConvGeneral (compute v0.1.14) indexes the output batch by the
			// input batch axis when batch-grouping: keep the reference correct.
			c.axes.OutputBatch, c.axes.OutputChannels = c.axes.InputBatch, c.axes.InputChannels
			c.axes.OutputSpatial = c.axes.InputSpatial
		}
		c.inputDims = make([]int, spatialRank+2)
		c.kernelDims = make([]int, spatialRank+2)
		c.inputDims[c.axes.InputBatch] = batch * c.batchGroups
		c.inputDims[c.axes.InputChannels] = inChannels * c.channelGroups
		c.kernelDims[c.axes.KernelInputChannels] = inChannels
		c.kernelDims[c.axes.KernelOutputChannels] = outChannels * groups

		ok := true
		for i := range spatialRank {
			size, kernelSize := 1+rng.IntN(maxSize), 1+rng.IntN(4)
			stride, kernelDilation, inputDilation := 1+rng.IntN(3), 1+rng.IntN(3), 1+rng.IntN(3)
			padding := [2]int{rng.IntN(3), rng.IntN(3)}
			if rng.IntN(6) == 0 {
				padding[1] = -1
			}
			c.inputDims[c.axes.InputSpatial[i]] = size
			c.kernelDims[c.axes.KernelSpatial[i]] = kernelSize
			c.strides = append(c.strides, stride)
			c.kernelDilations = append(c.kernelDilations, kernelDilation)
			c.inputDilations = append(c.inputDilations, inputDilation)
			c.paddings = append(c.paddings, padding)
			padded := (size-1)*inputDilation + 1 + padding[0] + padding[1]
			ok = ok && padded >= (kernelSize-1)*kernelDilation+1
		}
		if ok {
			return c
		}
	}
}

// array is random data for a tensor. Each run makes its own tensors from it: a tensor
// cannot be shared by different backend instances.
type array struct {
	dtype  dtypes.DType
	dims   []int
	values []float64
}

// randomArray returns an array of the given dtype with values uniform in [-1, 1).
func randomArray(rng *rand.Rand, dtype dtypes.DType, dims []int) array {
	n := 1
	for _, d := range dims {
		n *= d
	}
	values := make([]float64, n)
	for i := range values {
		values[i] = 2*rng.Float64() - 1
	}
	return array{dtype, dims, values}
}

// tensor returns a new tensor holding the array.
func (a array) tensor() *tensors.Tensor {
	if a.dtype == dtypes.Float64 {
		return tensors.FromFlatDataAndDimensions(a.values, a.dims...)
	}
	values := make([]float32, len(a.values))
	for i, v := range a.values {
		values[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(values, a.dims...)
}

// countingBackend decorates a backend to count the ConvGeneral and ReduceWindow calls that
// reach it. Wrapped by Wrap, it counts the operations that took the fallback.
type countingBackend struct {
	compute.Backend
	calls *atomic.Int64
}

func (b countingBackend) Builder(name string) compute.Builder {
	return countingBuilder{b.Backend.Builder(name), b.calls}
}

type countingBuilder struct {
	compute.Builder
	calls *atomic.Int64
}

func (b countingBuilder) Main() compute.Function {
	return countingFunction{b.Builder.Main(), b.calls}
}

type countingFunction struct {
	compute.Function
	calls *atomic.Int64
}

func (f countingFunction) ConvGeneral(input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (compute.Value, error) {
	f.calls.Add(1)
	return f.Function.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
}

func (f countingFunction) ReduceWindow(x compute.Value, op compute.ReduceOpType,
	window, strides, inputDilations, windowDilations []int, paddings [][2]int) (compute.Value, error) {
	f.calls.Add(1)
	return f.Function.ReduceWindow(x, op, window, strides, inputDilations, windowDilations, paddings)
}

// backends returns the plain Go backend, the decorated one, and the counter of the
// decorated backend's fallbacks. The decorated backend lowers tiny single-channel
// convolutions too, which Wrap leaves to the backend, so that the tests cover them.
func backends(t testing.TB) (direct, fast compute.Backend, fallbacks *atomic.Int64) {
	t.Helper()
	direct, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	fallbacks = new(atomic.Int64)
	b := Wrap(countingBackend{direct, fallbacks}).(*backend)
	b.tinyMACs = 0
	return direct, b, fallbacks
}

// run executes fn on the backend and returns its outputs as float64.
func run(t *testing.T, backend compute.Backend, fn func([]*graph.Node) []*graph.Node, inputs ...array) [][]float64 {
	t.Helper()
	exec, err := graph.NewExec(backend, func(nodes []*graph.Node) []*graph.Node {
		outputs := fn(nodes)
		for i, out := range outputs {
			outputs[i] = graph.ConvertDType(out, dtypes.Float64)
		}
		return outputs
	})
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in.tensor()
	}
	results, err := exec.Exec(args...)
	if err != nil {
		t.Fatalf("%s: %v", backend.Name(), err)
	}
	flat := make([][]float64, len(results))
	for i, r := range results {
		flat[i] = tensors.MustCopyFlatData[float64](r)
	}
	return flat
}

// assertClose fails the test if got and want differ by more than the dtype's tolerance,
// relative to the largest magnitude in want.
func assertClose(t *testing.T, what string, dtype dtypes.DType, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	tolerance := 1e-5 * scale
	if dtype == dtypes.Float64 {
		tolerance = 1e-12 * scale
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tolerance {
			t.Fatalf("%s: element %d is %g, want %g (tolerance %g)", what, i, got[i], want[i], tolerance)
		}
	}
}

// gradients returns the gradients of Σ conv(x, kernel) ⊙ weights with respect to x and
// kernel, for nodes (x, kernel, weights).
func (c convConfig) gradients(nodes []*graph.Node) []*graph.Node {
	loss := graph.ReduceAllSum(graph.Mul(c.conv(nodes[0], nodes[1]), nodes[2]))
	return graph.Gradient(loss, nodes[0], nodes[1])
}

// outputDims returns the dimensions of the convolution's output, or nil if the
// configuration is invalid.
func (c convConfig) outputDims() []int {
	outShape, err := shapeinference.ConvGeneral(
		shapes.Make(c.dtype, c.inputDims...), shapes.Make(c.dtype, c.kernelDims...), c.axes,
		c.strides, c.paddings, c.inputDilations, c.kernelDilations, c.channelGroups, c.batchGroups)
	if err != nil {
		return nil
	}
	return outShape.Dimensions
}

// differentiable reports whether GoMLX can build the gradients of the convolution: its
// reverse convolutions do not support every combination of padding and dilations.
func (c convConfig) differentiable(backend compute.Backend) bool {
	if c.outputDims() == nil {
		return false
	}
	exec, err := graph.NewExec(backend, c.gradients)
	if err != nil {
		return false
	}
	_, err = exec.Compile(shapes.Make(c.dtype, c.inputDims...), shapes.Make(c.dtype, c.kernelDims...),
		shapes.Make(c.dtype, c.outputDims()...))
	return err == nil
}

// TestConformance compares the decorated backend with the plain one on random
// convolutions, forward and gradients with respect to the input and the kernel, and checks
// that none of them took the fallback.
func TestConformance(t *testing.T) {
	direct, fast, fallbacks := backends(t)
	for i := range 300 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(i)))
			withGradients := i%3 == 0
			c := randomConfig(rng)
			for withGradients && !c.differentiable(direct) {
				c = randomConfig(rng)
			}
			checkConformance(t, rng, direct, fast, fallbacks, c, withGradients)
		})
	}
}

// TestCNNConvolutions compares the decorated backend with the plain one on the
// convolutions of the benchmarked CNNs at batch sizes above 1, forward and gradients:
// the cases whose plans move batch runs and split strided windows by phase.
func TestCNNConvolutions(t *testing.T) {
	direct, fast, fallbacks := backends(t)
	same := func(k int) [][2]int { return [][2]int{{k / 2, k / 2}, {k / 2, k / 2}} }
	for _, c := range []struct {
		name string
		convConfig
	}{
		{"stem 7x7 stride 2", convConfig{inputDims: []int{2, 3, 30, 30}, kernelDims: []int{8, 3, 7, 7},
			strides: []int{2, 2}, paddings: same(7), channelGroups: 1}},
		{"3x3 stride 2", convConfig{inputDims: []int{4, 16, 14, 14}, kernelDims: []int{24, 16, 3, 3},
			strides: []int{2, 2}, paddings: same(3), channelGroups: 1}},
		{"1x1 stride 2", convConfig{inputDims: []int{4, 16, 14, 14}, kernelDims: []int{24, 16, 1, 1},
			strides: []int{2, 2}, channelGroups: 1}},
		{"1x1 batch 8", convConfig{inputDims: []int{8, 24, 14, 14}, kernelDims: []int{40, 24, 1, 1},
			channelGroups: 1}},
		{"3x3 batch 4", convConfig{inputDims: []int{4, 32, 12, 12}, kernelDims: []int{16, 32, 3, 3},
			paddings: same(3), channelGroups: 1}},
		{"depthwise 3x3 stride 2", convConfig{inputDims: []int{4, 24, 16, 16}, kernelDims: []int{24, 1, 3, 3},
			strides: []int{2, 2}, paddings: same(3), channelGroups: 24}},
		{"depthwise 5x5 batch 8", convConfig{inputDims: []int{8, 12, 14, 14}, kernelDims: []int{12, 1, 5, 5},
			paddings: same(5), channelGroups: 12}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.convConfig
			cfg.dtype, cfg.axes, cfg.batchGroups = dtypes.Float32, nchw, 1
			checkConformance(t, rand.New(rand.NewPCG(2, 3)), direct, fast, fallbacks, cfg, true)
		})
	}
}

// checkConformance compares the decorated backend with the plain one on the convolution c,
// and on its gradients if withGradients, and checks that none took the fallback.
func checkConformance(t *testing.T, rng *rand.Rand, direct, fast compute.Backend, fallbacks *atomic.Int64,
	c convConfig, withGradients bool) {
	t.Helper()
	t.Log(c)
	x := randomArray(rng, c.dtype, c.inputDims)
	kernel := randomArray(rng, c.dtype, c.kernelDims)
	forward := func(nodes []*graph.Node) []*graph.Node {
		return []*graph.Node{c.conv(nodes[0], nodes[1])}
	}
	want := run(t, direct, forward, x, kernel)
	fallbacks.Store(0)
	got := run(t, fast, forward, x, kernel)
	if n := fallbacks.Load(); n != 0 {
		t.Fatalf("%d convolutions took the fallback", n)
	}
	assertClose(t, "forward", c.dtype, got[0], want[0])
	if !withGradients {
		return
	}

	weights := randomArray(rng, c.dtype, c.outputDims())
	want = run(t, direct, c.gradients, x, kernel, weights)
	fallbacks.Store(0)
	got = run(t, fast, c.gradients, x, kernel, weights)
	if n := fallbacks.Load(); n != 0 {
		t.Fatalf("%d gradient convolutions took the fallback", n)
	}
	assertClose(t, "gradient wrt input", c.dtype, got[0], want[0])
	assertClose(t, "gradient wrt kernel", c.dtype, got[1], want[1])
}

// TestFallback checks that uncovered convolutions go to the wrapped backend and still give
// its results.
func TestFallback(t *testing.T) {
	direct, fast, fallbacks := backends(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		name                  string
		dtype                 dtypes.DType
		axes                  compute.ConvolveAxesConfig
		inputDims, kernelDims []int
		strides               []int
	}{
		{"float16", dtypes.Float16, nchw, []int{1, 3, 6, 6}, []int{2, 3, 3, 3}, nil},
		// 17x17 = 289 windows, strided along their last axis and only 7 elements long
		// even with the phases split off: too fragmented for Gather, too many for Slice.
		{"too many slices", dtypes.Float32, nchw, []int{1, 1, 58, 29}, []int{1, 1, 17, 17}, []int{1, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			values := []array{
				randomArray(rng, dtypes.Float32, c.inputDims),
				randomArray(rng, dtypes.Float32, c.kernelDims),
			}
			forward := func(nodes []*graph.Node) []*graph.Node {
				x, kernel := graph.ConvertDType(nodes[0], c.dtype), graph.ConvertDType(nodes[1], c.dtype)
				return []*graph.Node{graph.ConvGeneral(x, kernel, c.axes, c.strides, nil, nil, nil, 1, 1)}
			}
			want := run(t, direct, forward, values...)
			fallbacks.Store(0)
			got := run(t, fast, forward, values...)
			if fallbacks.Load() != 1 {
				t.Fatalf("got %d fallbacks, want 1", fallbacks.Load())
			}
			if !slices.Equal(got[0], want[0]) {
				t.Fatal("fallback result differs from the wrapped backend's")
			}
		})
	}
}

// Wrap leaves tiny single-channel convolutions to the wrapped backend, with its results,
// and lowers those with more channels or more work.
func TestTinySingleChannelConvolutions(t *testing.T) {
	direct, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	fallbacks := new(atomic.Int64)
	fast := Wrap(countingBackend{direct, fallbacks})
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		input, kernel []int
		direct        bool
	}{
		{[]int{1, 1, 7, 7}, []int{1, 1, 3, 3}, true},      // 25·9 multiply-adds, one channel
		{[]int{1, 2, 7, 7}, []int{1, 2, 3, 3}, false},     // two input channels
		{[]int{1, 1, 7, 7}, []int{2, 1, 3, 3}, false},     // two output channels
		{[]int{1, 1, 120, 120}, []int{1, 1, 5, 5}, false}, // 116²·25 ≥ 2¹⁶ multiply-adds
	} {
		cfg := convConfig{dtype: dtypes.Float32, inputDims: c.input, kernelDims: c.kernel, axes: nchw,
			channelGroups: 1, batchGroups: 1}
		x, kernel := randomArray(rng, cfg.dtype, c.input), randomArray(rng, cfg.dtype, c.kernel)
		forward := func(nodes []*graph.Node) []*graph.Node { return []*graph.Node{cfg.conv(nodes[0], nodes[1])} }
		want := run(t, direct, forward, x, kernel)
		fallbacks.Store(0)
		got := run(t, fast, forward, x, kernel)
		if n := fallbacks.Load(); (n == 1) != c.direct {
			t.Errorf("input %v kernel %v: %d convolutions went to the backend, want direct=%v", c.input, c.kernel, n, c.direct)
		}
		assertClose(t, fmt.Sprint(c.input, c.kernel), cfg.dtype, got[0], want[0])
	}
}

// TestClosures checks that functions passed to control-flow ops are unwrapped, and that
// convolutions inside closures are lowered too: a While loop applies a convolution three
// times, and Sort uses a comparator closure.
func TestClosures(t *testing.T) {
	direct, fast, fallbacks := backends(t)
	rng := rand.New(rand.NewPCG(5, 6))
	c := convConfig{
		dtype: dtypes.Float32, inputDims: []int{1, 4, 6, 6}, kernelDims: []int{4, 4, 3, 3},
		axes:     nchw,
		paddings: [][2]int{{1, 1}, {1, 1}}, channelGroups: 1, batchGroups: 1,
	}
	fn := func(nodes []*graph.Node) []*graph.Node {
		x, kernel := nodes[0], nodes[1]
		g := x.Graph()
		cond := graph.NewClosure(g, func(g *graph.Graph) []*graph.Node {
			counter := graph.Parameter(g, "counter", shapes.Make(dtypes.Int32))
			_ = graph.Parameter(g, "x", x.Shape())
			return []*graph.Node{graph.LessThan(counter, graph.Const(g, int32(3)))}
		})
		body := graph.NewClosure(g, func(g *graph.Graph) []*graph.Node {
			counter := graph.Parameter(g, "counter", shapes.Make(dtypes.Int32))
			x := graph.Parameter(g, "x", x.Shape())
			return []*graph.Node{graph.AddScalar(counter, 1), c.conv(x, kernel)}
		})
		result := graph.While(cond, body, graph.Const(g, int32(0)), x)[1]
		return []*graph.Node{result, graph.Sort(graph.Reshape(result, -1), 0, true)}
	}
	inputs := []array{randomArray(rng, c.dtype, c.inputDims), randomArray(rng, c.dtype, c.kernelDims)}
	want := run(t, direct, fn, inputs...)
	fallbacks.Store(0)
	got := run(t, fast, fn, inputs...)
	if n := fallbacks.Load(); n != 0 {
		t.Fatalf("%d convolutions took the fallback", n)
	}
	for i := range want {
		assertClose(t, fmt.Sprintf("output %d", i), c.dtype, got[i], want[i])
	}
}

// A tensor computed on the decorated backend feeds the next computation on
// it, as a model's outputs feed the next step of a method.
func TestOutputsFeedTheNextComputation(t *testing.T) {
	direct, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(direct)
	double := graph.MustNewExec(b, func(x *graph.Node) *graph.Node { return graph.MulScalar(x, 2) })
	once := double.MustExec1(tensors.FromValue([]float32{1, 2}))
	twice, err := double.Exec1(once)
	if err != nil {
		t.Fatalf("feeding an output back: %v", err)
	}
	if got := tensors.MustCopyFlatData[float32](twice); got[0] != 4 || got[1] != 8 {
		t.Errorf("got %v, want [4 8]", got)
	}
}
