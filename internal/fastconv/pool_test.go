package fastconv

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
)

// Window reductions on the decorated backend equal the Go backend's own, on
// random pooling configurations and on the two that CNNs emit most: a
// max-pool with padding and a global average pool, forward and gradient.
func TestReduceWindowMatchesBackend(t *testing.T) {
	direct, fast, fallbacks := backends(t)
	rng := rand.New(rand.NewPCG(7, 11))
	ops := []compute.ReduceOpType{compute.ReduceOpSum, compute.ReduceOpMax, compute.ReduceOpMin}
	for i := range 60 {
		dtype := []dtypes.DType{dtypes.Float32, dtypes.Float64}[i%2]
		op := ops[i%3]
		dims := []int{1 + rng.IntN(2), 1 + rng.IntN(3), 3 + rng.IntN(6), 3 + rng.IntN(6)}
		window := []int{1, 1, 1 + rng.IntN(3), 1 + rng.IntN(3)}
		strides := []int{1, 1, 1 + rng.IntN(2), 1 + rng.IntN(2)}
		pads := [][2]int{{0, 0}, {0, 0}, {rng.IntN(2), rng.IntN(2)}, {rng.IntN(2), rng.IntN(2)}}
		if i%5 == 0 { // global
			window, strides, pads = []int{1, 1, dims[2], dims[3]}, nil, nil
		}
		x := randomArray(rng, dtype, dims)
		fn := func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.BackendReduceWindow(in[0], op, window, strides, nil, nil, pads)}
		}
		t.Run(fmt.Sprintf("%d/%s/%s/w%v/s%v/p%v", i, dtype, op, window, strides, pads), func(t *testing.T) {
			want := run(t, direct, fn, x)
			fallbacks.Store(0)
			got := run(t, fast, fn, x)
			if n := fallbacks.Load(); n != 0 {
				t.Fatalf("%d window reductions took the fallback", n)
			}
			assertClose(t, "reduce window", dtype, got[0], want[0])
		})
	}
	for _, c := range []struct {
		name string
		pool func(x *graph.Node) *graph.Node
	}{
		{"max-pool 3x3 stride 2 padded", func(x *graph.Node) *graph.Node { return graph.MaxPool(x).Window(3).Strides(2).PadSame().Done() }},
		{"global average pool", func(x *graph.Node) *graph.Node { return graph.MeanPool(x).WindowPerAxis(7, 7).Done() }},
		// More window positions than shifted copies are allowed for: the gradient is a
		// broadcast all the same (EfficientNet's squeeze-and-excitation pools 112x112).
		{"NCHW global average pool 16x16", func(x *graph.Node) *graph.Node {
			return graph.BackendReduceWindow(x, compute.ReduceOpSum, []int{1, 1, 16, 16}, []int{1, 1, 1, 1}, nil, nil, nil)
		}},
		// NCHW, as ONNX models pool: windows gathered in runs along the last axis.
		{"NCHW max-pool 3x3 stride 2 padded", func(x *graph.Node) *graph.Node {
			return graph.BackendReduceWindow(x, compute.ReduceOpMax, []int{1, 1, 3, 3}, []int{1, 1, 2, 2}, nil, nil,
				[][2]int{{0, 0}, {0, 0}, {1, 1}, {1, 1}})
		}},
		{"NCHW sum 3x3 stride 1", func(x *graph.Node) *graph.Node {
			return graph.BackendReduceWindow(x, compute.ReduceOpSum, []int{1, 1, 3, 3}, []int{1, 1, 1, 1}, nil, nil, nil)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dims := []int{2, 7, 7, 5}
			if strings.HasPrefix(c.name, "NCHW") {
				dims = []int{2, 3, 21, 20}
			}
			if strings.HasSuffix(c.name, "16x16") {
				dims = []int{2, 3, 16, 16}
			}
			x := randomArray(rng, dtypes.Float32, dims)
			fn := func(in []*graph.Node) []*graph.Node {
				y := c.pool(in[0])
				loss := graph.ReduceAllSum(graph.Mul(y, y))
				return []*graph.Node{y, graph.Gradient(loss, in[0])[0]}
			}
			want := run(t, direct, fn, x)
			fallbacks.Store(0)
			got := run(t, fast, fn, x)
			if n := fallbacks.Load(); n != 0 {
				t.Fatalf("%d window reductions took the fallback", n)
			}
			assertClose(t, "pool", dtypes.Float32, got[0], want[0])
			assertClose(t, "pool gradient", dtypes.Float32, got[1], want[1])
		})
	}
}

// A window sum over a tensor that Pad built with zeros reduces the Pad's operand
// instead, with the padding folded into its own; other fills are left alone.
func TestWindowSumFoldsZeroPadding(t *testing.T) {
	_, fast, _ := backends(t)
	f := fast.Builder("t").Main().(*function)
	x, err := f.Parameter("x", shapes.Make(dtypes.Float32, 1, 3, 1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	zero, _ := f.Constant([]float32{0})
	one, _ := f.Constant([]float32{1})
	config := []compute.PadAxis{{}, {}, {Start: 3, End: 3, Interior: 6}, {Start: 3, End: 3, Interior: 6}}
	paddings := [][2]int{{0, 0}, {0, 0}, {3, 3}, {3, 3}}
	zeroPadded, err := f.Pad(x, zero, config...)
	if err != nil {
		t.Fatal(err)
	}
	v, folded := f.foldZeroPadding(zeroPadded, paddings)
	if want := [][2]int{{0, 0}, {0, 0}, {6, 6}, {6, 6}}; v != x || !slices.Equal(folded, want) {
		t.Errorf("zero padding: got operand %v paddings %v, want x and %v", v == x, folded, want)
	}
	onePadded, err := f.Pad(x, one, config...)
	if err != nil {
		t.Fatal(err)
	}
	if v, folded := f.foldZeroPadding(onePadded, paddings); v != onePadded || !slices.Equal(folded, paddings) {
		t.Errorf("padding with ones was folded: %v", folded)
	}
}
