package models_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/convlens/convlens/internal/fastconv"
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

// NewRunner on the pure-Go backend moves a weight of fastconv.SharedMinBytes
// or more (here 4 × 2²⁰ float32, 16 MiB) into a buffer of the backend, whose
// graphs then feed it as it is; the logits must be those of the plain
// backend, where it stays a constant of the graph, and small weights stay put.
func TestRunnerSharesLargeWeights(t *testing.T) {
	const classes = 1 << 20
	dense := make([][]float32, 4)
	for c := range dense {
		dense[c] = make([]float32, classes)
		for k := range dense[c] {
			dense[c][k] = float32((k*13+c*7)%17-8) / 8
		}
	}
	image := make([]float32, 5*6*2)
	for i := range image {
		image[i] = float32(i%5) / 4
	}
	logits := func(r *models.Runner) []float32 {
		t.Helper()
		// One input tensor per runner: each has a backend of its own.
		out, _, err := r.Run(tensors.FromFlatDataAndDimensions(image, 1, 5, 6, 2))
		if err != nil {
			t.Fatal(err)
		}
		defer out.FinalizeAll()
		return tensors.MustCopyFlatData[float32](out)
	}
	plain := logits(modeltest.Runner(t, modeltest.TinyNativeWithDense(dense)))

	m := modeltest.TinyNativeWithDense(dense)
	r := models.NewRunner(modeltest.Backend(t), m)
	t.Cleanup(r.Close)
	for v := range m.Store().IterVariables() {
		value, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		large := v.Shape().ByteSize() >= fastconv.SharedMinBytes
		if value.IsShared() != large {
			t.Errorf("weight %s (%d bytes): moved to the backend %v, want %v", v.Name(), v.Shape().ByteSize(), value.IsShared(), large)
		}
	}
	got := logits(r)
	if len(got) != classes || len(plain) != classes {
		t.Fatalf("got %d and %d logits, want %d", len(got), len(plain), classes)
	}
	for k := range got {
		if d := got[k] - plain[k]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("logit %d: %g with the weight on the backend, %g as a constant", k, got[k], plain[k])
		}
	}
}

// On the pure-Go backend Run runs a batch in parts, one per core: with three
// cores a batch of 5 runs as 2, 2 and 1 images, and each image's logits and
// activations must be those of the image run alone.
func TestRunInPartsEqualsImagesAlone(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	t.Cleanup(r.Close)
	const n, per = 5, 5 * 6 * 2
	data := make([]float32, n*per)
	for i := range data {
		data[i] = float32((i*37)%23-11) / 7
	}
	logits, acts, err := r.Run(tensors.FromFlatDataAndDimensions(data, n, 5, 6, 2), "conv", "pool")
	if err != nil {
		t.Fatal(err)
	}
	batch := [][]float32{tensors.MustCopyFlatData[float32](logits)}
	for _, a := range acts {
		batch = append(batch, tensors.MustCopyFlatData[float32](a))
	}
	for i := range n {
		l, a, err := r.Run(tensors.FromFlatDataAndDimensions(data[i*per:(i+1)*per], 1, 5, 6, 2), "conv", "pool")
		if err != nil {
			t.Fatal(err)
		}
		for j, alone := range append([]*tensors.Tensor{l}, a...) {
			want := tensors.MustCopyFlatData[float32](alone)
			got := batch[j][i*len(want) : (i+1)*len(want)]
			for k := range want {
				if d := got[k] - want[k]; d > 1e-6 || d < -1e-6 {
					t.Fatalf("image %d, output %d, value %d: %g in the batch, %g alone", i, j, k, got[k], want[k])
				}
			}
		}
	}
}

// Many runs at once, each in parts, must all finish. With the pure-Go
// backend's ops_parallel schedule they did not: the executors of
// concurrent runs took every slot of the backend's worker pool and then
// waited in their matrix products for a free one (seen in the Beam audit).
// The matrix product here (4 × 2²⁰ per image) is large enough for the
// backend to spread it over the pool.
func TestConcurrentRunsFinish(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	dense := make([][]float32, 4)
	for c := range dense {
		dense[c] = make([]float32, 1<<20)
		for k := range dense[c] {
			dense[c][k] = float32((k+c)%7) / 7
		}
	}
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNativeWithDense(dense))
	t.Cleanup(r.Close)
	image := make([]float32, 4*5*6*2)
	for i := range image {
		image[i] = float32(i%9) / 9
	}
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			for range 3 {
				logits, _, err := r.Run(tensors.FromFlatDataAndDimensions(image, 4, 5, 6, 2))
				if err != nil {
					errs <- err
					return
				}
				logits.FinalizeAll()
			}
			errs <- nil
		}()
	}
	timeout := time.After(2 * time.Minute)
	for range cap(errs) {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("8 concurrent runs of 3 calls each did not finish in 2 minutes: the backend's worker pool is deadlocked")
		}
	}
}
