package fastconv

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestFoldedRearrangements runs chains of Reshape, Transpose and Reverse on constants
// on the decorated backend, where they are folded, and on the plain one, where the
// backend's own ops run them: the results must be identical. Two chains start from a
// parameter, which is not folded, as a control of the comparison.
func TestFoldedRearrangements(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dims := []int{3, 4, 2, 5}
	flat := make([]float32, size(dims))
	for i := range flat {
		flat[i] = rng.Float32()
	}
	chains := []func(x *graph.Node) *graph.Node{
		func(x *graph.Node) *graph.Node { return graph.TransposeAllDims(x, 2, 0, 3, 1) },
		func(x *graph.Node) *graph.Node { return graph.Reverse(x, 2, 3) },
		func(x *graph.Node) *graph.Node { return graph.Reverse(x, 0) },
		func(x *graph.Node) *graph.Node {
			y := graph.Reshape(graph.TransposeAllDims(x, 1, 0, 2, 3), 4, 3, 10)
			return graph.Reverse(graph.TransposeAllDims(y, 2, 1, 0), 0, 2)
		},
		func(x *graph.Node) *graph.Node { // the kernel of the gradient of a grouped conv
			y := graph.Reshape(x, 3, 1, 4, 2, 5)
			y = graph.TransposeAllDims(y, 0, 2, 1, 3, 4)
			return graph.Reverse(graph.Reshape(y, 12, 1, 2, 5), 2, 3)
		},
	}
	run := func(b compute.Backend, constant bool) []*tensors.Tensor {
		value := tensors.FromFlatDataAndDimensions(flat, dims...) // one per backend
		e := graph.MustNewExec(b, func(x *graph.Node) []*graph.Node {
			if constant {
				x = graph.Const(x.Graph(), value)
			}
			var out []*graph.Node
			for _, c := range chains {
				out = append(out, c(x))
			}
			return out
		})
		return e.MustExec(value)
	}
	plain := run(gobackend.GetBackend(), false)
	for _, constant := range []bool{true, false} {
		got := run(Wrap(gobackend.GetBackend()), constant)
		for i := range chains {
			if !slices.Equal(got[i].Shape().Dimensions, plain[i].Shape().Dimensions) ||
				!slices.Equal(tensors.MustCopyFlatData[float32](got[i]), tensors.MustCopyFlatData[float32](plain[i])) {
				t.Errorf("chain %d (constant %v): decorated backend gives %v, plain backend %v", i, constant, got[i], plain[i])
			}
		}
	}
}

// TestGatherStrided checks the folding kernel against coordinates computed one by
// one: a transposition and a reversal of a 4-axis array.
func TestGatherStrided(t *testing.T) {
	dims := []int{2, 3, 4, 5}
	src := make([]int, size(dims))
	for i := range src {
		src[i] = i
	}
	at := func(c []int) int { return ((c[0]*3+c[1])*4+c[2])*5 + c[3] }
	perm := []int{3, 1, 0, 2}
	in := rowStrides(dims)
	tdims, tstrides := make([]int, 4), make([]int, 4)
	for i, p := range perm {
		tdims[i], tstrides[i] = dims[p], in[p]
	}
	got := gatherStrided(src, tdims, 0, tstrides)
	n := 0
	for a := range tdims[0] {
		for b := range tdims[1] {
			for c := range tdims[2] {
				for d := range tdims[3] {
					o := []int{a, b, c, d}
					coord := make([]int, 4)
					for i, p := range perm {
						coord[p] = o[i]
					}
					if got[n] != src[at(coord)] {
						t.Fatalf("transpose: element %d (%v) is %d, want %d", n, o, got[n], src[at(coord)])
					}
					n++
				}
			}
		}
	}
	// Reverse axes 1 and 3.
	strides := slices.Clone(in)
	base := (dims[1]-1)*in[1] + (dims[3]-1)*in[3]
	strides[1], strides[3] = -in[1], -in[3]
	got = gatherStrided(src, dims, base, strides)
	n = 0
	for a := range 2 {
		for b := range 3 {
			for c := range 4 {
				for d := range 5 {
					if want := src[at([]int{a, 2 - b, c, 4 - d})]; got[n] != want {
						t.Fatalf("reverse: element %d is %d, want %d", n, got[n], want)
					}
					n++
				}
			}
		}
	}
}
