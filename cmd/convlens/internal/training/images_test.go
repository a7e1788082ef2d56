package training

import (
	"math"
	"os"
	"slices"
	"testing"

	"github.com/convlens/convlens/internal/rng"
	"github.com/convlens/convlens/models/embedded"
)

// TestTrainCellsSmoke trains both cell networks for a few steps: the loss
// falls, a second run with the same seed repeats the first exactly, and
// the weights save and load.
func TestTrainCellsSmoke(t *testing.T) {
	for _, grey := range []bool{false, true} {
		cfg := DefaultCellsConfig(grey)
		cfg.Images, cfg.Epochs, cfg.BatchSize, cfg.EvalImages = 96, 5, 16, 40
		var progress []Progress
		cfg.Progress = func(p Progress) { progress = append(progress, p) }
		r, err := TrainCells(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		if r.Steps != 30 || len(r.Losses) != 30 || len(progress) != 31 || !progress[30].Done {
			t.Fatalf("steps %d, losses %d, progress calls %d", r.Steps, len(r.Losses), len(progress))
		}
		if first, last := mean(r.Losses[:5]), mean(r.Losses[25:]); !(last < first) {
			t.Errorf("grey=%v: loss did not decrease: %.3f to %.3f", grey, first, last)
		}
		if math.IsNaN(r.HeldOutAccuracy) || r.HeldOutAccuracy < 0 || r.HeldOutAccuracy > 1 {
			t.Errorf("held-out accuracy %v", r.HeldOutAccuracy)
		}
		if grey {
			continue
		}
		cfg.Progress, cfg.EvalImages = nil, 0
		again, err := TrainCells(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again.Losses, r.Losses) || !math.IsNaN(again.HeldOutAccuracy) {
			t.Errorf("a second run with the same seed differs:\n%v\n%v", r.Losses, again.Losses)
		}
		dir := t.TempDir()
		if err := embedded.SaveCellsWeights(r.Store, dir); err != nil {
			t.Fatal(err)
		}
		if _, err := embedded.LoadCells(os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrainLesionsSmoke takes a few steps on a few lesion images, with no
// lesion in a third of them, and saves the result.
func TestTrainLesionsSmoke(t *testing.T) {
	cfg := DefaultLesionsConfig(true)
	cfg.Images, cfg.Epochs, cfg.BatchSize, cfg.MaxSteps, cfg.EvalImages = 48, 2, 12, 6, 12
	r, err := TrainLesions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Name != embedded.LesionsShortcutName || r.Steps != 6 || r.Model.Name() != embedded.LesionsShortcutName {
		t.Errorf("name %s steps %d", r.Name, r.Steps)
	}
	dir := t.TempDir()
	if err := embedded.SaveLesionsWeights(r.Store, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.LoadLesionsShortcut(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
}

func TestImageConfigRejects(t *testing.T) {
	for name, change := range map[string]func(*ImageConfig){
		"no images":     func(c *ImageConfig) { c.Images = 0 },
		"batch > set":   func(c *ImageConfig) { c.BatchSize = c.Images + 1 },
		"no epochs":     func(c *ImageConfig) { c.Epochs = 0 },
		"no rate":       func(c *ImageConfig) { c.LearningRate = math.NaN() },
		"negative eval": func(c *ImageConfig) { c.EvalImages = -1 },
	} {
		cfg := DefaultCellsConfig(false)
		change(&cfg.ImageConfig)
		if _, err := TrainCells(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAugmentationSymmetries: the eight symmetries of the square move
// pixels without changing them, and the identity is among them.
func TestAugmentationSymmetries(t *testing.T) {
	s := &imageSet{h: 4, w: 4, c: 2, labels: []int32{1}}
	for i := range 32 {
		s.pix = append(s.pix, uint8(i*7))
	}
	gen := rng.SplitMix64(3)
	seen := map[string]bool{}
	for range 64 {
		x, y := s.batch([]int{0}, true, &gen)
		got := x.Value().([][][][]float32)[0]
		if y.Value().([][]int32)[0][0] != 1 {
			t.Fatal("label changed")
		}
		var flat []float32
		for _, row := range got {
			for _, px := range row {
				flat = append(flat, px...)
			}
		}
		sorted := slices.Sorted(slices.Values(flat))
		for i, v := range sorted {
			if v != float32(i*7)/255 {
				t.Fatalf("pixel values changed: %v", sorted)
			}
		}
		seen[string(fmtFloats(flat))] = true
	}
	if len(seen) != 8 {
		t.Errorf("%d distinct symmetries, want 8", len(seen))
	}
	x, _ := s.batch([]int{0}, false, &gen)
	if x.Value().([][][][]float32)[0][0][1][0] != float32(2*7)/255 {
		t.Error("without augmentation the image moved")
	}
}

func fmtFloats(v []float32) []byte {
	out := make([]byte, len(v))
	for i, f := range v {
		out[i] = byte(f * 255)
	}
	return out
}
