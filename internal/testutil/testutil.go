// Package testutil holds what the test suites share: the backend they run on
// and readers for the PyTorch reference fixtures under testdata/.
package testutil

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

var (
	backendOnce sync.Once
	backend     compute.Backend
	backendErr  error
)

// Backend returns the pure-Go backend, as users get it, shared by a test binary.
func Backend(t testing.TB) compute.Backend {
	t.Helper()
	backendOnce.Do(func() { backend, backendErr = models.NewBackend("go") })
	if backendErr != nil {
		t.Fatalf("pure-Go backend: %v", backendErr)
	}
	return backend
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Testdata joins elements onto the repository's testdata directory.
func Testdata(elem ...string) string {
	return filepath.Join(append([]string{Root(), "testdata"}, elem...)...)
}

// ReadNPY reads a float32 .npy fixture or fails the test.
func ReadNPY(t testing.TB, path string) ([]float32, []int) {
	t.Helper()
	data, shape, err := npy.ReadFloat32(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return data, shape
}

// Python runs a Python script with Debian's python3 (NumPy, PyTorch), the
// independent reference the tests compare against, and returns its output.
// Outside CI a missing interpreter or module skips the test; in CI it fails.
func Python(t testing.TB, script string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput()
	if err != nil {
		Unavailable(t, fmt.Sprintf("python3 reference unavailable: %v\n%s", err, out))
	}
	return strings.TrimSpace(string(out))
}

// Unavailable stops a test whose tools (msg says which) are missing: it fails
// under CI=true, where the set-up installs every tool the tests use, and is
// skipped elsewhere.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipped outside CI")
}

// Chromium is the path of a Chromium (or Chrome) on PATH, or "" if there is none.
func Chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// MaxAbsDiff is max_i |a_i − b_i|.
func MaxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// RelErr is max_i |a_i − b_i| / max_i |b_i|: an error relative to the reference's scale.
func RelErr(got, want []float32) float64 {
	var scale float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	if scale == 0 {
		return MaxAbsDiff(got, want)
	}
	return MaxAbsDiff(got, want) / scale
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
