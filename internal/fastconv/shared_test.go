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

// sharingBackend is a decorated backend that holds float constants of 128 bytes and
// more once (the 32 float32 of the weights below, not the inputs), so that small tests
// exercise the mechanism.
func sharingBackend(t *testing.T) *backend {
	t.Helper()
	plain, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	b := Wrap(plain).(*backend)
	b.sharedMinBytes = 128
	return b
}

func randomFloats(rng *rand.Rand, n int) []float32 {
	flat := make([]float32, n)
	for i := range flat {
		flat[i] = rng.Float32()*2 - 1
	}
	return flat
}

// affine is x·Wᵀ + c for x [2, 8], W [4, 8] and c [2, 4], computed in float64 one
// element at a time: the reference for the graphs below.
func affine(x, w, c []float32) []float32 {
	out := make([]float32, 8)
	for i := range 2 {
		for j := range 4 {
			s := float64(c[i*4+j])
			for k := range 8 {
				s += float64(x[i*8+k]) * float64(w[j*8+k])
			}
			out[i*4+j] = float32(s)
		}
	}
	return out
}

func near(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := float64(a[i]) - float64(b[i]); d > 1e-5 || d < -1e-5 {
			return false
		}
	}
	return true
}

// affineExec compiles x·Wᵀ + c with W a constant of the graph and x, c parameters
// created before and after it, so the shared constant's parameter sits between the
// caller's.
func affineExec(t *testing.T, b compute.Backend, w *tensors.Tensor) *graph.Exec {
	t.Helper()
	e, err := graph.NewExec(b, func(x, c *graph.Node) *graph.Node {
		wc := graph.Const(x.Graph(), w)
		return graph.Add(graph.Einsum("ik,jk->ij", x, wc), c)
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func run1(t *testing.T, e *graph.Exec, args ...any) []float32 {
	t.Helper()
	out, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

// held returns the live buffers the backend holds.
func held(b *backend) []*sharedBuffer {
	b.shared.mu.Lock()
	defer b.shared.mu.Unlock()
	var out []*sharedBuffer
	for k := range b.shared.entries {
		if e := b.shared.lookup(k); e != nil {
			out = append(out, e)
		}
	}
	return out
}

func entries(b *backend) int { return len(held(b)) }

// affineCase is what the tests below start from: a sharing backend, the weights W
// [4, 8] in a tensor of their own, and the inputs x [2, 8] and c [2, 4].
type affineCase struct {
	b                   *backend
	wFlat, xFlat, cFlat []float32
	w, x, c             *tensors.Tensor
}

func newAffineCase(t *testing.T, seed uint64) affineCase {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	a := affineCase{b: sharingBackend(t), wFlat: randomFloats(rng, 32), xFlat: randomFloats(rng, 16), cFlat: randomFloats(rng, 8)}
	a.w = tensors.FromFlatDataAndDimensions(slices.Clone(a.wFlat), 4, 8)
	a.x = tensors.FromFlatDataAndDimensions(a.xFlat, 2, 8)
	a.c = tensors.FromFlatDataAndDimensions(a.cFlat, 2, 4)
	return a
}

// TestSharedConstants checks that a large constant becomes a parameter fed from one
// buffer for every graph given the same tensor, that the results are those of the
// math, that the graph's inputs are only the caller's, and that the buffer goes with
// the last executable.
func TestSharedConstants(t *testing.T) {
	a := newAffineCase(t, 11)
	b, wFlat, w, x, c := a.b, a.wFlat, a.w, a.x, a.c
	want := affine(a.xFlat, wFlat, a.cFlat)

	e1 := affineExec(t, b, w)
	if got := run1(t, e1, x, c); !near(got, want) {
		t.Fatalf("first graph: got %v, want %v", got, want)
	}
	if n := entries(b); n != 1 {
		t.Fatalf("after one graph the backend holds %d constants, want 1", n)
	}
	e2 := affineExec(t, b, w)
	if got := run1(t, e2, x, c); !near(got, want) {
		t.Fatalf("second graph: got %v, want %v", got, want)
	}
	if n := entries(b); n != 1 {
		t.Errorf("two graphs of the same weights: the backend holds %d constants, want 1", n)
	}
	for _, v := range held(b) {
		if v.refs != 2 {
			t.Errorf("the shared constant has %d holders, want 2", v.refs)
		}
	}
	// The compiled executable reports the caller's two parameters only.
	e := compileAffine(t, b, wFlat)
	if names, _ := e.Inputs(); len(names) != 2 {
		t.Errorf("Inputs() = %v, want the caller's 2 parameters", names)
	}
	if len(e.sharedAt) != 1 || e.sharedAt[0] != 1 {
		t.Errorf("shared parameter at %v, want [1] (between x and c)", e.sharedAt)
	}
	e.Finalize()
	e1.Finalize()
	if n := entries(b); n != 1 {
		t.Errorf("with one graph left the backend holds %d constants, want 1", n)
	}
	e2.Finalize()
	if n := entries(b); n != 0 {
		t.Errorf("with every graph freed the backend still holds %d constants", n)
	}
}

// compileAffine builds x·Wᵀ + c on the decorated backend's own ops, for a look at the
// executable itself.
func compileAffine(t *testing.T, b *backend, wFlat []float32) *executable {
	t.Helper()
	builder := b.Builder("affine")
	fn := builder.Main()
	must := func(v compute.Value, err error) compute.Value {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	x := must(fn.Parameter("x", tensors.FromFlatDataAndDimensions(make([]float32, 16), 2, 8).Shape(), nil))
	w := must(fn.Constant(wFlat, 4, 8))
	c := must(fn.Parameter("c", tensors.FromFlatDataAndDimensions(make([]float32, 8), 2, 4).Shape(), nil))
	y := must(fn.DotGeneral(x, []int{1}, nil, w, []int{1}, nil, compute.DotGeneralConfig{}))
	y = must(fn.Add(y, c))
	if err := fn.Return([]compute.Value{y}, nil); err != nil {
		t.Fatal(err)
	}
	e, err := builder.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return e.(*executable)
}

// TestSharedConstantsChangedInPlace changes a tensor's values in place between two
// graphs: each graph must compute with the values it was built with, as constants
// promise, never with the other's buffer.
func TestSharedConstantsChangedInPlace(t *testing.T) {
	a := newAffineCase(t, 13)
	b, wFlat, xFlat, cFlat, w, x, c := a.b, a.wFlat, a.xFlat, a.cFlat, a.w, a.x, a.c
	rng := rand.New(rand.NewPCG(17, 18))

	before := affineExec(t, b, w)
	wantBefore := affine(xFlat, wFlat, cFlat)
	if got := run1(t, before, x, c); !near(got, wantBefore) {
		t.Fatalf("got %v, want %v", got, wantBefore)
	}
	changed := randomFloats(rng, 32)
	tensors.MustMutableFlatData(w, func(flat []float32) { copy(flat, changed) })
	after := affineExec(t, b, w)
	if got, want := run1(t, after, x, c), affine(xFlat, changed, cFlat); !near(got, want) {
		t.Errorf("graph built after the change: got %v, want %v (the changed values)", got, want)
	}
	if got := run1(t, before, x, c); !near(got, wantBefore) {
		t.Errorf("graph built before the change: got %v, want %v (the values it was built with)", got, wantBefore)
	}
	before.Finalize()
	after.Finalize()
	if n := entries(b); n != 0 {
		t.Errorf("with every graph freed the backend still holds %d constants", n)
	}
}

// TestSharedConstantsOnDevice moves the weights to the decorated backend, as
// models.NewRunner does with large ones: graphs must feed that very buffer (no new
// one), keep it valid after the tensor is freed, and free it after the last graph.
func TestSharedConstantsOnDevice(t *testing.T) {
	a := newAffineCase(t, 15)
	b, w, x, c := a.b, a.w, a.x, a.c
	if err := w.ToDevice(b, 0); err != nil {
		t.Fatal(err)
	}
	if !w.IsShared() {
		t.Fatal("the tensor did not move to a shared buffer")
	}
	if n := entries(b); n != 1 {
		t.Fatalf("the backend noted %d shared buffers, want the tensor's", n)
	}
	stored := held(b)[0]
	want := affine(a.xFlat, a.wFlat, a.cFlat)
	e := affineExec(t, b, w)
	if got := run1(t, e, x, c); !near(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := entries(b); n != 1 || stored.refs != 2 {
		t.Errorf("the graph made a buffer of its own: %d buffers, the tensor's has %d holders (want 1 and 2)", n, stored.refs)
	}
	w.FinalizeAll()
	if got := run1(t, e, x, c); !near(got, want) {
		t.Errorf("after the tensor was freed: got %v, want %v", got, want)
	}
	e.Finalize()
	if n := entries(b); n != 0 {
		t.Errorf("with the tensor and the graph freed the backend still holds %d buffers", n)
	}
}
