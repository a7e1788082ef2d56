package gradcam

import (
	"runtime"
	"testing"

	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/compute/gobackend"
)

// The pure-Go backend as convlens makes it runs a batch in one part per core,
// never more parts than images; a backend that convlens did not decorate
// (here the plain pure-Go one) in one.
func TestConcurrentParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	fast := modeltest.Backend(t)
	for n, want := range map[int]int{1: 1, 2: 2, 8: 2} {
		if got := concurrentParts(fast, n); got != want {
			t.Errorf("decorated pure-Go backend, batch %d: %d parts, want %d", n, got, want)
		}
	}
	if got := concurrentParts(gobackend.GetBackend(), 8); got != 1 {
		t.Errorf("plain pure-Go backend, batch 8: %d parts, want 1", got)
	}
}
