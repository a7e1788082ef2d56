package fastconv

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
)

// Binary ops on the decorated backend equal the Go backend's own for operands
// that broadcast along any subset of axes, on either side.
func TestBinaryOpsMatchBackend(t *testing.T) {
	direct, fast, _ := backends(t)
	rng := rand.New(rand.NewPCG(3, 5))
	ops := map[string]func(a, b *graph.Node) *graph.Node{
		"add": graph.Add, "sub": graph.Sub, "mul": graph.Mul, "div": graph.Div,
		"max": graph.Max, "min": graph.Min, "pow": graph.Pow,
	}
	names := []string{"add", "sub", "mul", "div", "max", "min", "pow"}
	cases := [][2][]int{
		{{8, 16, 5, 5}, {1, 16, 1, 1}}, // NCHW bias at batch 8: the rewritten case.
		{{1, 16, 5, 5}, {1, 16, 1, 1}}, // Already trailing.
		{{8, 5, 5, 16}, {1, 1, 1, 16}}, // Already leading.
	}
	for range 40 {
		rank := 2 + rng.IntN(4)
		big, small := make([]int, rank), make([]int, rank)
		for a := range rank {
			big[a] = 1 + rng.IntN(6)
			small[a] = big[a]
			if rng.IntN(2) == 0 {
				small[a] = 1
			}
		}
		cases = append(cases, [2][]int{big, small})
	}
	for i, c := range cases {
		name := names[i%len(names)]
		dtype := []dtypes.DType{dtypes.Float32, dtypes.Float64}[i%2]
		big, small := randomArray(rng, dtype, c[0]), randomArray(rng, dtype, c[1])
		if name == "pow" || name == "div" { // Positive bases, no division by ~0.
			for _, a := range []array{big, small} {
				for j, v := range a.values {
					a.values[j] = 0.5 + v*v
				}
			}
		}
		smallFirst := i%3 == 0
		t.Run(fmt.Sprintf("%d/%s/%s/%v/%v/smallFirst=%v", i, name, dtype, c[0], c[1], smallFirst), func(t *testing.T) {
			fn := func(in []*graph.Node) []*graph.Node {
				if smallFirst {
					return []*graph.Node{ops[name](in[1], in[0])}
				}
				return []*graph.Node{ops[name](in[0], in[1])}
			}
			want := run(t, direct, fn, big, small)
			got := run(t, fast, fn, big, small)
			assertClose(t, name, dtype, got[0], want[0])
		})
	}
}

// Only operands that the backend would broadcast element by element are
// materialised, and only when that is cheap.
func TestTrailingBroadcastRewritesOnlySlowCases(t *testing.T) {
	_, fast, _ := backends(t)
	f := fast.Builder("t").Main().(*function)
	for _, c := range []struct {
		small, out []int
		rewritten  bool
	}{
		{[]int{1, 16, 1, 1}, []int{8, 16, 5, 5}, true},
		{[]int{1, 16, 1, 1}, []int{1, 16, 5, 5}, false},  // trailing
		{[]int{1, 1, 1, 16}, []int{8, 5, 5, 16}, false},  // leading
		{[]int{1, 1, 1, 1}, []int{8, 5, 5, 16}, false},   // scalar
		{[]int{1, 16, 5, 1}, []int{8, 16, 5, 2}, false},  // materialising would cost half the output
		{[]int{1, 16, 1, 5}, []int{8, 16, 40, 5}, false}, // as costly as the output itself
	} {
		s := shapes.Make(dtypes.Float32, c.small...)
		x, err := f.Parameter(fmt.Sprint(c.small, c.out), s, nil)
		if err != nil {
			t.Fatal(err)
		}
		y, err := f.trailing(x, s, c.out)
		if err != nil {
			t.Fatal(err)
		}
		if got := y != x; got != c.rewritten {
			t.Errorf("%v broadcast to %v: rewritten %v, want %v", c.small, c.out, got, c.rewritten)
		}
	}
}
