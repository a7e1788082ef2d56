package training

import (
	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"
)

// LesionsConfig configures [TrainLesions].
type LesionsConfig struct {
	ImageConfig
	// Shortcut trains on lesiondata.Shortcut images (a ruler on every
	// suspicious lesion, none on benign ones) instead of lesiondata.Standard,
	// and evaluates on held-out images with the same correlation.
	Shortcut bool
}

// DefaultLesionsConfig is the configuration the embedded lesions weights
// were trained with; with shortcut, those of the lesions-shortcut weights.
func DefaultLesionsConfig(shortcut bool) LesionsConfig {
	cfg := LesionsConfig{ImageConfig: ImageConfig{
		Images: 3000, Epochs: 4, BatchSize: 32, LearningRate: 3e-3, Seed: 1,
		Augment: true, EvalImages: evaluation.DefaultLesionImages,
	}, Shortcut: shortcut}
	if shortcut {
		cfg.Seed = 2
	}
	return cfg
}

// TrainLesions trains the lesion network ([embedded.LesionsForward]) on
// generated images and measures its accuracy on held-out ones; save the
// result with [embedded.SaveLesionsWeights]. Training images come from
// lesiondata sets seeded by cfg.Seed, never the held-out seed; a third of
// them show no lesion (lesiondata.NoLesion).
func TrainLesions(cfg LesionsConfig) (*Report, error) {
	data := lesiondata.Standard()
	name := embedded.LesionsName
	if cfg.Shortcut {
		data, name = lesiondata.Shortcut(), embedded.LesionsShortcutName
	}
	train := data
	train.NoLesionImages = true
	set := lesiondata.Set{Seed: uint64(cfg.Seed) ^ 0x5452414e /* "TRAN" */, Config: train}
	heldOut := lesiondata.HeldOut(data)
	return trainImages(imageTask{
		name: name, input: embedded.LesionsInput, labels: embedded.LesionsLabels(), forward: embedded.LesionsForward,
		sample: func(i int, dst []float32) int {
			s := set.Sample(i)
			s.Float32(dst)
			return int(s.Class)
		},
		accuracy: func(b compute.Backend, m models.Model, n int) (float64, error) {
			return evaluation.LesionsAccuracy(b, m, heldOut, n)
		},
	}, cfg.ImageConfig)
}
