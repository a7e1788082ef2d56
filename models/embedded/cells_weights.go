package embedded

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/ml/model"
)

// The embedded weights of the cell models, one .npy file per variable (the
// format of [LoadMNIST]).
//
//go:embed weights/cells/*.npy weights/cells-grey/*.npy
var cellsWeights embed.FS

// Where the embedded weights live, relative to the repository root;
// `convlens train cells [--grey]` rewrites them there.
const (
	CellsWeightsDir     = "models/embedded/weights/cells"
	CellsGreyWeightsDir = "models/embedded/weights/cells-grey"
)

// Cells returns the red/white blood-cell classifier embedded in convlens,
// trained on the colour images of datasets/celldata. It reads nothing from
// disk or network; each call returns a new model.
func Cells() (*models.Native, error) { return embeddedNative(cellsWeights, "weights/cells", LoadCells) }

// CellsGrey returns the same network trained on the same images greyed out.
// It takes colour images and greys them itself.
func CellsGrey() (*models.Native, error) {
	return embeddedNative(cellsWeights, "weights/cells-grey", LoadCellsGrey)
}

// LoadCells builds the colour cell network ([CellsForward]) with the weights
// in dir, a folder as [SaveCellsWeights] writes it.
func LoadCells(dir fs.FS) (*models.Native, error) {
	return loadNative(dir, CellsName, CellsInput, CellsLabels(), cellsVariables, CellsForward)
}

// LoadCellsGrey builds the grey cell network ([CellsGreyForward]) with the
// weights in dir, a folder as [SaveCellsGreyWeights] writes it.
func LoadCellsGrey(dir fs.FS) (*models.Native, error) {
	return loadNative(dir, CellsGreyName, CellsInput, CellsLabels(), cellsGreyVariables, CellsGreyForward)
}

// SaveCellsWeights writes the colour cell network's variables of store into
// dir, one .npy file per variable, replacing the folder as a whole as
// [SaveLesionsWeights] does.
func SaveCellsWeights(store *model.Store, dir string) error {
	if err := saveWeights(store, dir, cellsVariables); err != nil {
		return fmt.Errorf("saving cells weights: %w", err)
	}
	return nil
}

// SaveCellsGreyWeights writes the grey cell network's variables of store
// into dir, replacing the folder as a whole.
func SaveCellsGreyWeights(store *model.Store, dir string) error {
	if err := saveWeights(store, dir, cellsGreyVariables); err != nil {
		return fmt.Errorf("saving cells-grey weights: %w", err)
	}
	return nil
}

func init() {
	registerEmbedded(CellsName, func() (models.Model, error) { return Cells() })
	registerEmbedded(CellsGreyName, func() (models.Model, error) { return CellsGrey() })
}
