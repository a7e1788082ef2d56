package convgrad

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/convlens/convlens/internal/fastconv"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// conv is one grouped convolution: shapes in the layout of axes, and its parameters.
type conv struct {
	name         string
	x, k         []int
	axes         graph.ConvolveAxesConfig
	strides, dil []int
	pads         [][2]int
	groups       int
}

var (
	nchw = graph.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3},
	}
	nhwc = graph.ConvolveAxesConfig{ // HWIO kernel
		InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2},
	}
)

var convs = []conv{
	{name: "depthwise 3x3", x: []int{2, 6, 9, 9}, k: []int{6, 1, 3, 3}, axes: nchw, pads: [][2]int{{1, 1}, {1, 1}}, groups: 6},
	{name: "depthwise stride 2 (MobileNetV2)", x: []int{1, 8, 12, 12}, k: []int{8, 1, 3, 3}, axes: nchw, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}, groups: 8},
	{name: "depthwise 5x5 stride 2 (EfficientNet)", x: []int{1, 4, 14, 14}, k: []int{4, 1, 5, 5}, axes: nchw, strides: []int{2, 2}, pads: [][2]int{{2, 2}, {2, 2}}, groups: 4},
	{name: "stride drops trailing inputs", x: []int{1, 3, 8, 7}, k: []int{3, 1, 3, 3}, axes: nchw, strides: []int{2, 3}, groups: 3},
	{name: "asymmetric padding", x: []int{1, 2, 7, 6}, k: []int{2, 1, 3, 3}, axes: nchw, strides: []int{2, 1}, pads: [][2]int{{0, 2}, {1, 0}}, groups: 2},
	{name: "channel multiplier", x: []int{1, 3, 6, 6}, k: []int{6, 1, 3, 3}, axes: nchw, pads: [][2]int{{1, 1}, {1, 1}}, groups: 3},
	{name: "groups of 2 in, 3 out", x: []int{2, 4, 7, 7}, k: []int{6, 2, 3, 3}, axes: nchw, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}, groups: 2},
	{name: "kernel dilation", x: []int{1, 4, 11, 11}, k: []int{4, 1, 3, 3}, axes: nchw, dil: []int{2, 2}, pads: [][2]int{{2, 2}, {2, 2}}, groups: 4},
	{name: "NHWC, HWIO kernel", x: []int{2, 9, 8, 6}, k: []int{3, 3, 2, 6}, axes: nhwc, strides: []int{2, 2}, pads: [][2]int{{1, 1}, {1, 1}}, groups: 3},
}

func random(rng *rand.Rand, dims []int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// TestInputGradient checks the one grouped convolution against GoMLX's own gradient
// (one convolution per group: an independent construction) and against the gradient
// of the loss sum(v·y) by central differences at a few inputs, on the plain pure-Go
// backend and on fastconv's.
func TestInputGradient(t *testing.T) {
	backends := map[string]compute.Backend{"go": gobackend.GetBackend(), "fastconv": fastconv.Wrap(gobackend.GetBackend())}
	for _, c := range convs {
		for bname, b := range backends {
			t.Run(c.name+"/"+bname, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, uint64(len(c.name))))
				y := func(x, k *graph.Node) *graph.Node {
					return graph.ConvGeneral(x, k, c.axes, c.strides, c.pads, nil, c.dil, c.groups, 1)
				}
				var outDims []int
				shape := graph.MustNewExec(b, func(x, k *graph.Node) *graph.Node { return y(x, k) })
				xt, kt := random(rng, c.x), random(rng, c.k)
				outDims = shape.MustExec1(xt, kt).Shape().Dimensions
				vt := random(rng, outDims)
				exec := graph.MustNewExec(b, func(x, k, v *graph.Node) []*graph.Node {
					out := y(x, k)
					p, ok := readParams(out)
					if !ok {
						t.Fatal("readParams: GoMLX's ConvGeneral parameters moved")
					}
					ours := inputGrad(out, v, p)
					theirs := upstream(out, []*graph.Node{v}, out.Shape())[0]
					registered := graph.Gradient(graph.ReduceAllSum(graph.Mul(out, v)), x)[0]
					loss := graph.ReduceAllSum(graph.Mul(out, v))
					return []*graph.Node{ours, theirs, registered, loss}
				})
				res := exec.MustExec(xt, kt, vt)
				ours, theirs, registered := res[0].Value().([][][][]float64), res[1].Value().([][][][]float64), res[2].Value().([][][][]float64)
				if !slices.Equal(res[0].Shape().Dimensions, c.x) {
					t.Fatalf("gradient shape %v, want the input's %v", res[0].Shape().Dimensions, c.x)
				}
				if d := maxDiff(ours, theirs); d > 1e-12 {
					t.Errorf("one grouped convolution differs from GoMLX's per-group gradient by %.3g", d)
				}
				if d := maxDiff(registered, theirs); d > 1e-12 {
					t.Errorf("graph.Gradient differs from GoMLX's per-group gradient by %.3g", d)
				}

				// Central differences of the loss at a few input positions.
				lossExec := graph.MustNewExec(b, func(x, k, v *graph.Node) *graph.Node {
					return graph.ReduceAllSum(graph.Mul(y(x, k), v))
				})
				flat := tensors.MustCopyFlatData[float64](xt)
				const h = 1e-4
				for trial := range 5 {
					i := rng.IntN(len(flat))
					at := func(delta float64) float64 {
						moved := slices.Clone(flat)
						moved[i] += delta
						return lossExec.MustExec1(tensors.FromFlatDataAndDimensions(moved, c.x...), kt, vt).Value().(float64)
					}
					fd := (at(h) - at(-h)) / (2 * h)
					got := tensors.MustCopyFlatData[float64](res[0])[i]
					if math.Abs(fd-got) > 1e-6*(1+math.Abs(fd)) {
						t.Errorf("trial %d, input %d: gradient %.9g, central difference %.9g", trial, i, got, fd)
					}
				}
			})
		}
	}
}

func maxDiff(a, b [][][][]float64) float64 {
	d := math.Inf(1)
	if len(a) != len(b) {
		return d
	}
	d = 0
	for i := range a {
		for j := range a[i] {
			for k := range a[i][j] {
				for l := range a[i][j][k] {
					d = max(d, math.Abs(a[i][j][k][l]-b[i][j][k][l]))
				}
			}
		}
	}
	return d
}

// TestReadParams pins the parameters read from GoMLX's unexported node inputs: if
// GoMLX renames or reorders them, this fails rather than the gradient silently
// falling back to GoMLX's slow one.
func TestReadParams(t *testing.T) {
	g := graph.NewGraph(gobackend.GetBackend(), "params")
	x := graph.Parameter(g, "x", shapesOf(1, 4, 9, 9))
	k := graph.Parameter(g, "k", shapesOf(4, 1, 3, 3))
	y := graph.ConvGeneral(x, k, nchw, []int{2, 1}, [][2]int{{1, 2}, {0, 1}}, []int{1, 1}, []int{1, 2}, 4, 1)
	p, ok := readParams(y)
	if !ok {
		t.Fatal("readParams failed on a ConvGeneral node")
	}
	want := params{axes: nchw, strides: []int{2, 1}, paddings: [][2]int{{1, 2}, {0, 1}}, inputDilations: []int{1, 1}, kernelDilations: []int{1, 2}, groups: 4, batchGroups: 1}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("read %+v, want %+v", p, want)
	}
	if _, ok := readParams(graph.Neg(x)); ok {
		t.Error("readParams accepted a Neg node")
	}
}

func shapesOf(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float64, dims...) }
