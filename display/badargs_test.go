package display

import (
	"errors"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/heatmap"
)

// Every entry point given a nil image (also a nil pointer inside the
// image.Image), an unreadable or huge one, a bad map or a size too large to
// draw returns an error that names the argument, never panics, and
// allocates nothing for a size it refuses.
func TestBadArgumentsAreErrors(t *testing.T) {
	var nilRGBA *image.RGBA
	var nilGray *image.Gray
	huge := image.NewUniform(color.White) // Bounds of 2e9×2e9 pixels.
	hollow := &image.RGBA{Rect: image.Rect(0, 0, 4, 4)}
	base := image.NewRGBA(image.Rect(0, 0, 8, 8))
	digit := image.NewGray(image.Rect(0, 0, 4, 4))
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	overflowing := heatmap.Map{Width: 1 << 33, Height: 1 << 31, Values: []float32{}} // Width·Height wraps to 0.
	top := []ReportClass{{Index: 0, Probability: 1}}
	path := filepath.Join(t.TempDir(), "out.png")
	picture := func(f func() (image.Image, error)) func() error {
		return func() error {
			img, err := f()
			if img != nil {
				t.Errorf("a picture with the error %v", err)
			}
			return err
		}
	}
	for _, c := range []struct {
		name string
		call func() error
		want []string
	}{
		{"Overlay nil base", picture(Overlay(nil, m).Image), []string{"Overlay: base image is nil"}},
		{"Overlay typed-nil base", picture(Overlay(nilRGBA, m).Image), []string{"Overlay: base image is a nil *image.RGBA"}},
		{"Overlay empty base", picture(Overlay(image.NewRGBA(image.Rect(0, 0, 0, 3)), m).Image), []string{"Overlay: base image (*image.RGBA) is empty"}},
		{"Overlay hollow base", picture(Overlay(hollow, m).Image), []string{"Overlay: base image (*image.RGBA) cannot be read"}},
		{"Overlay huge base", picture(Overlay(huge, m).Image), []string{"Overlay: base image size 2000000000x2000000000", "heatmap.MaxPixels"}},
		{"Overlay overflowing map", picture(Overlay(base, overflowing).Image), []string{"has 0 values, want 1.845e+19, more than a slice holds"}},
		{"Overlay Save typed nil", func() error { return Overlay(nilRGBA, m).Save(path) }, []string{"base image is a nil *image.RGBA"}},
		{"SavePNG nil", func() error { return SavePNG(path, nil) }, []string{"SavePNG: img is nil"}},
		{"SavePNG typed nil", func() error { return SavePNG(path, nilRGBA) }, []string{"SavePNG: img is a nil *image.RGBA"}},
		{"SavePNG hollow", func() error { return SavePNG(path, hollow) }, []string{"SavePNG: img (*image.RGBA) cannot be read"}},
		{"SavePNG huge", func() error { return SavePNG(path, huge) }, []string{"SavePNG: img size 2000000000x2000000000"}},
		{"Show typed nil", func() error { return Show(nilGray) }, []string{"Show: img is a nil *image.Gray"}},
		{"Heatmap bad map", picture(Heatmap(heatmap.Map{}).Image), []string{"invalid map size 0x0"}},
		{"Heatmap overflowing map", picture(Heatmap(overflowing).Image), []string{"more than a slice holds"}},
		{"Heatmap huge Size", picture(Heatmap(m).Size(1<<20, 1<<20).Image), []string{"Heatmap: picture size 1048576x1048576 is 1099511.6 megapixels"}},
		{"Heatmap overflowing Size", picture(Heatmap(m).Size(math.MaxInt, math.MaxInt).Image), []string{"Heatmap: picture size", "heatmap.MaxPixels"}},
		{"Heatmap half a Size", picture(Heatmap(m).Size(0, 5).Image), []string{"Heatmap: picture size 0x5"}},
		{"Panel typed-nil base", picture(Panel(nilRGBA, m).Image), []string{"Overlay: base image is a nil *image.RGBA"}},
		{"Panel huge base", picture(Panel(huge, m).Image), []string{"base image size 2000000000x2000000000"}},
		{"Rows typed-nil image", picture(Rows(Row{Image: base, Map: m}, Row{Image: nilRGBA, Map: m}).Image), []string{"row 1", "base image is a nil *image.RGBA"}},
		{"Rows bad map", picture(Rows(Row{Image: base, Map: heatmap.Map{Width: 3}}).Image), []string{"row 0", "invalid map size 3x0"}},
		{"TileGrid empty map", picture(TileGrid(heatmap.Tiles{Maps: []heatmap.Map{{}}}).Image), []string{"grid tile 0", "invalid map size 0x0"}},
		{"TileGrid no maps", picture(TileGrid(heatmap.Tiles{}).Image), []string{"no tiles"}},
		{"TileGrid overflowing map", picture(TileGrid(heatmap.Tiles{Maps: []heatmap.Map{overflowing}}).Image), []string{"grid tile 0", "more than a slice holds"}},
		{"FilterGrid huge TileSize", picture(FilterGrid(m).TileSize(1 << 40).Image), []string{"grid tile size 1099511627776x1099511627776", "heatmap.MaxPixels"}},
		{"FilterGrid largest TileSize", picture(FilterGrid(m).TileSize(math.MaxInt).Image), []string{"grid tile size"}},
		{"FilterGrid page too large", picture(FilterGrid(m, m, m, m).TileSize(8000).Image), []string{"grid page size", "heatmap.MaxPixels"}},
		{"ImageGrid typed nil", picture(ImageGrid(base, nilRGBA).Image), []string{"ImageGrid: image 1 is a nil *image.RGBA"}},
		{"ImageGrid huge image", picture(ImageGrid(huge).Image), []string{"ImageGrid: image 0 size 2000000000x2000000000"}},
		{"ImageGrid hollow image", picture(ImageGrid(hollow).Image), []string{"ImageGrid: image 0 (*image.RGBA) cannot be read"}},
		{"PixelGrid nil", picture(PixelGrid(nil).Image), []string{"PixelGrid: img is nil"}},
		{"PixelGrid typed nil", picture(PixelGrid(nilGray).Image), []string{"PixelGrid: img is a nil *image.Gray"}},
		{"PixelGrid huge CellSize", picture(PixelGrid(digit).CellSize(1 << 40).Image), []string{"PixelGrid: cell size 1099511627776x1099511627776"}},
		{"PixelGrid picture too large", picture(PixelGrid(digit).CellSize(5000).Image), []string{"PixelGrid: picture size 20001x20001"}},
		{"Colorbar huge Height", picture(Colorbar(Jet, 0, 1).Height(1 << 40).Image), []string{"Colorbar: picture size 16x1099511627776"}},
		{"Report typed-nil image", func() error {
			_, err := Report(ReportInfo{}, ReportPage{Image: nilRGBA, Map: m, Top: top}).HTML()
			return err
		}, []string{"page 1", "Report: page image is a nil *image.RGBA"}},
		{"Report huge image", func() error {
			_, err := Report(ReportInfo{}, ReportPage{Image: huge, Map: m, Top: top}).HTML()
			return err
		}, []string{"page 1", "Report: page image size 2000000000x2000000000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatalf("no error, want one saying %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused picture was saved: %v", err)
	}
	// Panels stacked beyond the limit are refused as a whole.
	defer func(n int) { heatmap.MaxPixels = n }(heatmap.MaxPixels)
	heatmap.MaxPixels = 500 * 500
	rows := make([]Row, 8)
	for i := range rows {
		rows[i] = Row{Image: base, Map: m}
	}
	if _, err := Rows(rows[:1]...).Image(); err != nil {
		t.Errorf("one row under the lowered limit: %v", err)
	}
	if img, err := Rows(rows...).Image(); err == nil || img != nil || !strings.Contains(err.Error(), "picture of the panels size") {
		t.Errorf("8 rows over the limit: %v", err)
	}
}
