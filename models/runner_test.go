package models_test

import (
	"runtime"
	"slices"
	"testing"

	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// With no heap slack the runner collects garbage after every call; with the
// default one, only once a few MB of garbage have piled up, which a small
// model takes many calls to leave; with a negative one it leaves collection
// to the runtime.
func TestRunnerHeapSlack(t *testing.T) {
	m, err := embedded.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	r := modeltest.Runner(t, m)
	x := tensors.FromFlatDataAndDimensions(make([]float32, 28*28), 1, 28, 28, 1)
	const calls = 20
	collections := func(slack int64) uint32 {
		r.SetHeapSlack(slack)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range calls {
			logits, _, err := r.Run(x)
			if err != nil {
				t.Fatal(err)
			}
			logits.FinalizeAll()
		}
		runtime.ReadMemStats(&after)
		return after.NumGC - before.NumGC
	}
	collections(-1) // Compiles.
	// Slack 0 collects after each call whose garbage the runtime has not
	// already collected; on a loaded machine its own cycles take some (14 of
	// 20 seen), so ask for most calls, not all.
	if n := collections(0); n < calls/2 {
		t.Errorf("slack 0: %d collections in %d calls, want about one per call", n, calls)
	}
	n := collections(models.DefaultHeapSlack)
	t.Logf("default slack: %d collections in %d calls", n, calls)
	if n > calls/4 {
		t.Errorf("default slack: %d collections in %d calls of a small model, want a few", n, calls)
	}
	if n := collections(-1); n >= calls/2 {
		t.Errorf("slack -1: %d collections in %d calls, want the runtime's own pace", n, calls)
	}
}

// Beyond SetMaxGraphs' limit the least recently used executable is freed, and
// compiled again, with the same results, when it is used again.
func TestRunnerMaxGraphs(t *testing.T) {
	m, err := embedded.MNIST()
	if err != nil {
		t.Fatal(err)
	}
	r := modeltest.Runner(t, m)
	r.SetMaxGraphs(2)
	x := tensors.FromFlatDataAndDimensions(make([]float32, 2*28*28), 2, 28, 28, 1)
	run := func(layer string) []float32 {
		t.Helper()
		_, acts, err := r.Run(x, layer)
		if err != nil {
			t.Fatal(err)
		}
		defer acts[0].FinalizeAll()
		return tensors.MustCopyFlatData[float32](acts[0])
	}
	compiled := func() int { return models.CompiledGraphs(r) }
	first := run("relu1")
	run("relu2")
	run("pool1")
	if n := compiled(); n != 2 {
		t.Errorf("%d executables hold compiled graphs, want 2", n)
	}
	if again := run("relu1"); !slices.Equal(again, first) {
		t.Error("the recompiled executable gives other activations")
	}
	if n := compiled(); n != 2 {
		t.Errorf("after reuse: %d executables hold compiled graphs, want 2", n)
	}
}
