package embedded

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/ml/model"
)

// The embedded weights of the lesion models, one .npy file per variable
// (the format of [LoadMNIST]).
//
//go:embed weights/lesions/*.npy weights/lesions-shortcut/*.npy
var lesionsWeights embed.FS

// Where the embedded weights live, relative to the repository root;
// `convlens train lesions [--shortcut]` rewrites them there.
const (
	LesionsWeightsDir         = "models/embedded/weights/lesions"
	LesionsShortcutWeightsDir = "models/embedded/weights/lesions-shortcut"
)

// Lesions returns the lesion classifier embedded in convlens: benign versus
// suspicious (and "no lesion", see [LesionsLabels]) on the dermoscopy-like
// images of datasets/lesiondata, trained by cmd/convlens/internal/training with rulers on
// 30% of the images of either class. Its Grad-CAM maps at
// [LesionsGradCAMLayer] fall on the lesion (cmd/convlens/internal/evaluation measures
// how well). It reads nothing from disk or network; each call returns a new
// model.
func Lesions() (*models.Native, error) {
	return embeddedNative(lesionsWeights, "weights/lesions", LoadLesions)
}

// LesionsShortcut returns the shortcut lesion classifier: the same network
// trained on images where a ruler marks every suspicious lesion and no
// benign one. It learnt the ruler; see cmd/convlens/internal/evaluation.LesionsShortcut.
func LesionsShortcut() (*models.Native, error) {
	return embeddedNative(lesionsWeights, "weights/lesions-shortcut", LoadLesionsShortcut)
}

// LoadLesions builds the lesion network ([LesionsForward]) with the weights
// in dir, a folder as [SaveLesionsWeights] writes it (the format of
// [LoadMNIST]).
func LoadLesions(dir fs.FS) (*models.Native, error) {
	return loadNative(dir, LesionsName, LesionsInput, LesionsLabels(), lesionsVariables, LesionsForward)
}

// LoadLesionsShortcut is [LoadLesions] for the shortcut model: the same
// network under the name [LesionsShortcutName].
func LoadLesionsShortcut(dir fs.FS) (*models.Native, error) {
	return loadNative(dir, LesionsShortcutName, LesionsInput, LesionsLabels(), lesionsVariables, LesionsForward)
}

// SaveLesionsWeights writes the lesion network's variables of store (either
// model's) into dir, one .npy file per variable as [LoadLesions] reads them.
// The folder is replaced as a whole: the files are written into a new
// folder beside it, which then takes its place; a save that fails leaves the
// previous weights untouched (the folder's other files, such as a README,
// are carried over).
func SaveLesionsWeights(store *model.Store, dir string) error {
	if err := saveWeights(store, dir, lesionsVariables); err != nil {
		return fmt.Errorf("saving lesions weights: %w", err)
	}
	return nil
}

// embeddedNative loads an embedded weights folder with load.
func embeddedNative(efs embed.FS, dir string, load func(fs.FS) (*models.Native, error)) (*models.Native, error) {
	sub, err := fs.Sub(efs, dir)
	if err != nil {
		return nil, err
	}
	m, err := load(sub)
	if err != nil {
		return nil, fmt.Errorf("embedded weights: %w", err)
	}
	return m, nil
}

// loadNative reads weights from dir and wraps forward as a checked models.Native model.
func loadNative(dir fs.FS, name string, in models.Input, labels []string, vars []weight, forward models.ForwardFunc) (*models.Native, error) {
	store, err := loadWeights(dir, vars)
	if err != nil {
		return nil, fmt.Errorf("%s weights: %w", name, err)
	}
	m := models.NewNative(name, in, store, forward).SetLabels(labels)
	if _, err := m.Check(); err != nil {
		return nil, err
	}
	return m, nil
}

func init() {
	registerEmbedded(LesionsName, func() (models.Model, error) { return Lesions() })
	registerEmbedded(LesionsShortcutName, func() (models.Model, error) { return LesionsShortcut() })
}
