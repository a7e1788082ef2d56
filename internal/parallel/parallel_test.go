package parallel_test

import (
	"sync/atomic"
	"testing"

	"github.com/convlens/convlens/internal/parallel"
)

func TestForRunsEveryStepOnce(t *testing.T) {
	var calls [1000]atomic.Int32
	parallel.For(len(calls), func(i int) { calls[i].Add(1) })
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Fatalf("step %d ran %d times", i, n)
		}
	}
	parallel.For(0, func(int) { t.Error("a step of an empty loop ran") })
}
