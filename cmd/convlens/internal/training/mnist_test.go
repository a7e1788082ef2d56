package training

import (
	"math"
	"os"
	"slices"
	"testing"

	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/internal/rng"
	"github.com/convlens/convlens/models/embedded"
)

// TestTrainMNISTSmoke trains for a few steps on a small subset: the loss
// must fall, the run must be reproducible, and its weights must save and load.
func TestTrainMNISTSmoke(t *testing.T) {
	cfg := DefaultMNISTConfig()
	cfg.Epochs, cfg.BatchSize, cfg.LearningRate, cfg.Seed, cfg.TrainDigits, cfg.MaxSteps = 3, 32, 3e-3, 7, 320, 24
	var progress []MNISTProgress
	cfg.Progress = func(p MNISTProgress) { progress = append(progress, p) }
	r, err := TrainMNIST(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Steps != 24 || len(r.Losses) != 24 || r.TrainDigits != 320 {
		t.Fatalf("steps %d, losses %d, digits %d", r.Steps, len(r.Losses), r.TrainDigits)
	}
	first, last := mean(r.Losses[:4]), mean(r.Losses[len(r.Losses)-4:])
	t.Logf("mean loss of the first 4 steps %.3f, of the last 4 %.3f", first, last)
	if first < 1.8 || last > 0.75*first {
		t.Errorf("loss did not decrease: first steps %.3f, last steps %.3f (all: %v)", first, last, r.Losses)
	}
	if r.HeldOutTotal != 2000 || !(r.HeldOutAccuracy > 0.3 && r.HeldOutAccuracy <= 1) {
		t.Errorf("held-out accuracy %v (%d/%d)", r.HeldOutAccuracy, r.HeldOutCorrect, r.HeldOutTotal)
	}
	if len(progress) != 25 || progress[23].Step != 24 || progress[23].Steps != 24 || !progress[24].Done || progress[0].Epoch != 1 || progress[23].Epoch != 3 {
		t.Errorf("progress calls: %d, last two %+v", len(progress), progress[len(progress)-2:])
	}

	// The cosine schedule has taken the learning rate close to zero.
	if v := r.Store.GetVariable("/optimizers/learning_rate"); v == nil {
		t.Error("no learning rate variable")
	} else if lr := v.MustValue().Value().(float32); lr <= 0 || lr > 0.05*3e-3 {
		t.Errorf("final learning rate %v", lr)
	}

	// Same seed, same run.
	cfg.Progress, cfg.SkipEval = nil, true
	again, err := TrainMNIST(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Losses, r.Losses) {
		t.Errorf("a second run with the same seed gave other losses:\n%v\n%v", r.Losses, again.Losses)
	}
	if !math.IsNaN(again.HeldOutAccuracy) {
		t.Errorf("SkipEval still evaluated: %v", again.HeldOutAccuracy)
	}

	dir := t.TempDir()
	if err := embedded.SaveMNISTWeights(r.Store, dir); err != nil {
		t.Fatal(err)
	}
	m, err := embedded.LoadMNIST(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Layers()); got == 0 {
		t.Error("reloaded model has no layers")
	}
}

func TestTrainMNISTRejectsBadConfig(t *testing.T) {
	for name, change := range map[string]func(*MNISTConfig){
		"batch > digits": func(c *MNISTConfig) { c.TrainDigits, c.BatchSize = 10, 64 },
		"no epochs":      func(c *MNISTConfig) { c.Epochs = 0 },
		"no rate":        func(c *MNISTConfig) { c.LearningRate = 0 },
		"scale 1":        func(c *MNISTConfig) { c.Augment.Scale = 1 },
	} {
		cfg := DefaultMNISTConfig()
		change(&cfg)
		if _, err := TrainMNIST(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAugmentation(t *testing.T) {
	d, err := mnistdata.Load()
	if err != nil {
		t.Fatal(err)
	}
	src := d.Image(0)
	gen := rng.SplitMix64(1)
	orig := make([]float32, len(src))
	Augmentation{}.apply(src, orig, &gen)
	for i, v := range src {
		if orig[i] != float32(v)/255 {
			t.Fatalf("the zero augmentation changed pixel %d", i)
		}
	}
	ink0, y0, x0 := moments(orig)
	aug := DefaultMNISTConfig().Augment
	prev := orig
	for range 20 {
		out := make([]float32, len(src))
		aug.apply(src, out, &gen)
		for _, v := range out {
			if v < 0 || v > 1 {
				t.Fatalf("augmented pixel %v outside [0,1]", v)
			}
		}
		// ±10% scaling changes the ink by at most about ±21%; a shift of at
		// most 2 pixels (plus the small rotation and scaling about the centre)
		// moves its centroid by little.
		ink, y, x := moments(out)
		if r := ink / ink0; r < 0.75 || r > 1.3 {
			t.Errorf("ink ratio %.2f", r)
		}
		if math.Abs(y-y0) > 3.5 || math.Abs(x-x0) > 3.5 {
			t.Errorf("centroid moved from (%.1f,%.1f) to (%.1f,%.1f)", y0, x0, y, x)
		}
		if slices.Equal(out, prev) {
			t.Error("two draws gave the same image")
		}
		prev = out
	}
}

// moments returns the total ink of a 28x28 image and its centroid.
func moments(p []float32) (ink, y, x float64) {
	for i, v := range p {
		ink += float64(v)
		y += float64(v) * float64(i/28)
		x += float64(v) * float64(i%28)
	}
	return ink, y / ink, x / ink
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
