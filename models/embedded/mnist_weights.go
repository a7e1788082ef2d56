package embedded

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/ml/model"
)

// The embedded weights: one NumPy .npy file per variable, see [LoadMNIST].
//
//go:embed weights/mnist/*.npy
var mnistWeights embed.FS

// MNISTWeightsDir is where the embedded weights live, relative to the
// repository root; `convlens train mnist` rewrites them there.
const MNISTWeightsDir = "models/embedded/weights/mnist"

// MNIST returns the MNIST digit classifier embedded in convlens, trained on
// 8,000 real MNIST digits (see datasets/mnistdata and cmd/convlens/internal/training). It
// reads nothing from disk or network. Each call returns a new model with its
// own copy of the weights.
func MNIST() (*models.Native, error) {
	sub, err := fs.Sub(mnistWeights, "weights/mnist")
	if err != nil {
		return nil, err
	}
	m, err := LoadMNIST(sub)
	if err != nil {
		return nil, fmt.Errorf("embedded weights: %w", err)
	}
	return m, nil
}

// LoadMNIST builds the MNIST network ([MNISTForward]) with the weights in
// dir, for instance os.DirFS of a folder written by [SaveMNISTWeights].
//
// The folder holds one file per variable, named "<scope>.<name>.npy" (e.g.
// "conv1.weights.npy" for the variable /conv1/weights): NumPy's .npy format,
// float32, C order, with the variable's shape, so numpy.load reads them.
// Every variable must be present with its exact shape and finite values;
// files other than .npy are ignored, and an unknown .npy file is an error (it
// would be a weight the network does not use).
func LoadMNIST(dir fs.FS) (*models.Native, error) {
	store, err := loadWeights(dir, mnistVariables)
	if err != nil {
		return nil, fmt.Errorf("mnist weights: %w", err)
	}
	m := models.NewNative(MNISTName, MNISTInput, store, MNISTForward).SetLabels(MNISTLabels())
	if _, err := m.Check(); err != nil {
		return nil, err
	}
	return m, nil
}

// SaveMNISTWeights writes the MNIST variables of store (a store trained with
// [MNISTForward], e.g. training.MNISTReport.Store, or a loaded model's
// Store()) into dir, creating it, one .npy file per variable as [LoadMNIST]
// reads them. Other variables in the store (optimizer state) are not written.
func SaveMNISTWeights(store *model.Store, dir string) error {
	if err := saveWeights(store, dir, mnistVariables); err != nil {
		return fmt.Errorf("saving mnist weights: %w", err)
	}
	return nil
}

func init() { registerEmbedded(MNISTName, func() (models.Model, error) { return MNIST() }) }
