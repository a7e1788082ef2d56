package embedded

import (
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// Names of the embedded blood-cell models.
const (
	// CellsName is the red/white blood-cell classifier trained on colour images.
	CellsName = "cells"
	// CellsGreyName is the same network trained on the same images greyed out.
	CellsGreyName = "cells-grey"
)

// CellsInput is what both cell models take: 64x64 RGB images, channels-last,
// pixels in [0,1] (the images of datasets/celldata). The grey model takes
// colour images too and greys them out itself (its first layer, "grey"), so
// both models can be run and explained on the same images.
var CellsInput = models.Input{Layout: models.NHWC, Channels: 3, Height: 64, Width: 64, Normalization: models.Identity}

// CellsLabels are the class names of the cell models, by logit.
func CellsLabels() []string { return []string{"red", "white"} }

// The cell models have the lesion models' architecture (smallCNN in
// lesions.go) at 64x64, so their last convolution (relu4) is 8x8; the grey
// one first converts RGB to luma, 0.299R + 0.587G + 0.114B.
var (
	cellsNet     = smallCNN{widths: [4]int{16, 32, 64, 64}, classes: 2}
	cellsGreyNet = smallCNN{widths: [4]int{16, 32, 64, 64}, classes: 2, grey: true}

	cellsVariables     = cellsNet.variables(3)
	cellsGreyVariables = cellsGreyNet.variables(3)
)

// CellsForward is the colour cell network as a [models.ForwardFunc]: x is a batch
// shaped [N, 64, 64, 3] (see [CellsInput]), the result the logits, [N, 2].
func CellsForward(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
	return cellsNet.forward(scope, x, tap)
}

// CellsGreyForward is the grey cell network: the same as [CellsForward]
// after converting x to luma (tapped as "grey", [N, 64, 64, 1]).
func CellsGreyForward(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
	return cellsGreyNet.forward(scope, x, tap)
}
