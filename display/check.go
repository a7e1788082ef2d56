package display

import (
	"fmt"
	"image"

	"github.com/convlens/convlens/internal/check"

	"github.com/convlens/convlens/heatmap"
)

// Every picture display draws, and every image it reads whole, has at most
// heatmap.MaxPixels pixels: a larger size (a TileSize, Size, Height or
// CellSize too large, an image whose bounds are huge) is refused with an
// error before anything is allocated.

// checkImage says what makes img unusable as a picture, if anything (see
// check.Image), or that it has more than heatmap.MaxPixels pixels. what
// names the argument in the message ("Overlay: base image").
func checkImage(what string, img image.Image) error {
	if err := check.Image(img); err != nil {
		return fmt.Errorf("display: %s %w", what, err)
	}
	b := img.Bounds()
	return checkSize(what, b.Dx(), b.Dy())
}

// checkSize is heatmap.CheckSize for a picture display is about to draw.
func checkSize(what string, width, height int) error {
	if err := heatmap.CheckSize(what, width, height); err != nil {
		return fmt.Errorf("display: %w", err)
	}
	return nil
}
