package training

import (
	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
	"github.com/convlens/convlens/datasets/celldata"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"
)

// CellsConfig configures [TrainCells].
type CellsConfig struct {
	ImageConfig
	// Grey trains the grey network ([embedded.CellsGreyForward]), which sees
	// the same colour images greyed out.
	Grey bool
}

// DefaultCellsConfig is the configuration the embedded cells (or, with
// grey, cells-grey) weights were trained with: both on the same 2,000 images.
func DefaultCellsConfig(grey bool) CellsConfig {
	return CellsConfig{ImageConfig: ImageConfig{
		Images: 2000, Epochs: 8, BatchSize: 32, LearningRate: 3e-3, Seed: 1,
		Augment: true, EvalImages: evaluation.DefaultCellImages,
	}, Grey: grey}
}

// TrainCells trains a cell network on generated images and measures its
// accuracy on the held-out cells; save the result with
// [embedded.SaveCellsWeights] or [embedded.SaveCellsGreyWeights].
func TrainCells(cfg CellsConfig) (*Report, error) {
	name, forward := embedded.CellsName, embedded.CellsForward
	if cfg.Grey {
		name, forward = embedded.CellsGreyName, embedded.CellsGreyForward
	}
	// The images depend on the seed only, not on Grey: both models see the same.
	set := celldata.Set{Seed: uint64(cfg.Seed) ^ 0x5452414e /* "TRAN" */}
	return trainImages(imageTask{
		name: name, input: embedded.CellsInput, labels: embedded.CellsLabels(), forward: forward,
		sample: func(i int, dst []float32) int {
			s := set.Sample(i)
			s.Float32(dst)
			return int(s.Class)
		},
		accuracy: func(b compute.Backend, m models.Model, n int) (float64, error) {
			return evaluation.CellsAccuracy(b, m, n)
		},
	}, cfg.ImageConfig)
}
