package embedded

import (
	"fmt"
	"image"

	"github.com/convlens/convlens/datasets/celldata"
	"github.com/convlens/convlens/datasets/lesiondata"
)

// Sample is one held-out image of an embedded model's data set, with its
// label and ground truth: what a notebook or a program outside this module
// needs to check a model and its heat maps against, without the internal
// generators.
type Sample struct {
	// Image is the picture, at the model's input size (LesionsInput or
	// CellsInput: the models take it as is).
	Image image.Image
	// Label is the class index, into LesionsLabels or CellsLabels.
	Label int
	// Mask marks the lesion's pixels (lesions; all false for "no lesion")
	// or the cell's pixels (cells): row-major, width × height of Image.
	Mask []bool
	// Ruler marks the band of the ruler drawn on the image (lesions), or
	// is nil when the image shows none.
	Ruler []bool
}

// HasRuler reports whether the image shows a ruler.
func (s Sample) HasRuler() bool { return s.Ruler != nil }

// LesionSamples returns the first n images of the lesion models' held-out
// set, the same images `convlens eval lesions` measures (it uses the first
// 500). With shortcut false they are drawn as Lesions was trained:
// a ruler on 30% of the images of either class, independent of the class.
// With shortcut true the ruler is on half of the images of each class and
// every lesion looks like its class: the set on which `convlens eval
// lesions --shortcut` measures where LesionsShortcut, trained with a
// ruler on every suspicious image, looks.
func LesionSamples(n int, shortcut bool) ([]Sample, error) {
	if n <= 0 {
		return nil, fmt.Errorf("LesionSamples: n = %d, want > 0", n)
	}
	cfg := lesiondata.Standard()
	if shortcut {
		cfg = lesiondata.Uncorrelated()
	}
	set := lesiondata.HeldOut(cfg)
	out := make([]Sample, n)
	for i := range out {
		s := set.Sample(i)
		out[i] = Sample{Image: s.Image, Label: int(s.Class), Mask: s.Mask, Ruler: s.Ruler}
	}
	return out, nil
}

// CellSamples returns the first n images of the cells models' held-out set
// (alternately red and white blood cells), the images `convlens eval cells`
// measures (it uses the first 1,000). Mask marks the cell; Ruler is nil.
func CellSamples(n int) ([]Sample, error) {
	if n <= 0 {
		return nil, fmt.Errorf("CellSamples: n = %d, want > 0", n)
	}
	set := celldata.HeldOut()
	out := make([]Sample, n)
	for i := range out {
		s := set.Sample(i)
		out[i] = Sample{Image: s.Image, Label: int(s.Class), Mask: s.Mask}
	}
	return out, nil
}

// Luma is the brightness a greyscale model sees of a colour (Rec. 601
// weights, channels in [0,1]): CellsGrey reduces its input to it
// before its first convolution.
func Luma(r, g, b float64) float64 { return celldata.Luma(r, g, b) }
