// Package modeltest holds what tests of code above the models floor share, as
// net/http/httptest does for HTTP: the pure-Go backend as users get it, and a
// tiny native model whose Grad-CAM has a closed form.
package modeltest

import (
	"sync"
	"testing"

	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

var (
	backendOnce sync.Once
	shared      compute.Backend
	backendErr  error
)

// Backend returns the pure-Go backend, as users get it, shared by a test binary.
func Backend(t testing.TB) compute.Backend {
	t.Helper()
	backendOnce.Do(func() { shared, backendErr = backend.New("go") })
	if backendErr != nil {
		t.Fatalf("pure-Go backend: %v", backendErr)
	}
	return shared
}

// Runner returns a Runner for m on a pure-Go backend of its own (the runner's
// memory policies are measured per backend), both closed with the test.
func Runner(t testing.TB, m models.Model) *models.Runner {
	t.Helper()
	b, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(b, m)
	t.Cleanup(func() {
		r.Close()
		b.Finalize()
	})
	return r
}

// TinyNativeDense are TinyNative's dense weights, [channel][class].
var TinyNativeDense = [][]float32{{1, -1, 0.5}, {0.2, 0.3, -0.4}, {-0.6, 0.1, 0.9}, {0.7, 0.7, -0.2}}

// TinyNative is conv(3x3, 2→4) → ReLU → global average pool → dense(4→3), NHWC,
// with fixed weights: the logits are linear in the tapped activation, so its
// Grad-CAM has a closed form (see gradcam's tests). Its dense weights are TinyNativeDense.
func TinyNative() *models.Native {
	return TinyNativeWithDense(TinyNativeDense)
}

// TinyNativeWithDense is TinyNative with other dense weights, [channel][class].
func TinyNativeWithDense(dense [][]float32) *models.Native {
	store := model.NewStore()
	kernel := make([]float32, 3*3*2*4)
	for i := range kernel {
		kernel[i] = float32((i*7)%11-5) / 10
	}
	forward := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		k := scope.VariableWithValue("kernel", tensors.FromFlatDataAndDimensions(kernel, 3, 3, 2, 4)).ValueGraph(x)
		a := tap("relu", activation.Relu(tap("conv", graph.Convolve(x, k).PadSame().Done())))
		pooled := tap("pool", graph.ReduceMean(a, 1, 2))
		w := scope.VariableWithValue("dense", dense).ValueGraph(x)
		return tap("logits", graph.Dot(pooled, w).Product())
	}
	return models.NewNative("tiny", models.Input{Layout: models.NHWC, Channels: 2, Height: 5, Width: 6}, store, forward)
}
