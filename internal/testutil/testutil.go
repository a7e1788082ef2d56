// Package testutil holds what the test suites share below the models floor:
// where the fixtures are, readers for the PyTorch reference fixtures under
// testdata/, the Python reference and the rule for tests whose tools are
// missing. The backend and the tiny models tests run on are in models/modeltest.
package testutil

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
)

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
