package fastconv

import (
	"runtime"
	"testing"

	"github.com/gomlx/compute/gobackend"
)

// A backend that Wrap returned runs one call per core, never more calls than
// items; any other backend (here the plain pure-Go one) one call.
func TestCallsAtOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	plain := gobackend.GetBackend()
	fast := Wrap(plain)
	for n, want := range map[int]int{0: 1, 1: 1, 2: 2, 8: 2} {
		if got := CallsAtOnce(fast, n); got != want {
			t.Errorf("decorated backend, %d items: %d calls at once, want %d", n, got, want)
		}
	}
	if got := CallsAtOnce(plain, 8); got != 1 {
		t.Errorf("plain backend, 8 items: %d calls at once, want 1", got)
	}
}
