package display

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/heatmap"
)

// The golden pictures testdata/grid_*.png are written by
// scripts/reference/grid_golden.py from the layout documented in grid.go and
// matplotlib's colour tables, not from this package's output. Their label and
// title strips are magenta: text is checked for ink instead of pixel by pixel.

var gridMask = color.RGBA{255, 0, 255, 255}

// fiveMaps are the 4x4 maps of grid_golden.py's five_maps, in its order.
func fiveMaps() []heatmap.Map {
	ramp := make([]float32, 16)
	tall := make([]float32, 16)
	blank := make([]float32, 16)
	checker := make([]float32, 16)
	hot := make([]float32, 16)
	for y := range 4 {
		for x := range 4 {
			i := y*4 + x
			ramp[i] = []float32{-1, 0, 1, 3}[x]
			tall[i] = 1000 + 500*float32(y)
			checker[i] = -1
			if (x+y)%2 == 0 {
				checker[i] = -2
			}
			hot[i] = 0.1
		}
	}
	hot[1*4+2] = 5
	out := make([]heatmap.Map, 0, 5)
	for _, v := range [][]float32{ramp, tall, blank, checker, hot} {
		out = append(out, heatmap.Map{Width: 4, Height: 4, Values: v})
	}
	return out
}

// tenMaps are grid_golden.py's ten_maps: map k is [[k, k+1], [k+2, 2k+3]].
func tenMaps() []heatmap.Map {
	out := make([]heatmap.Map, 10)
	for k := range out {
		f := float32(k)
		out[k] = heatmap.Map{Width: 2, Height: 2, Values: []float32{f, f + 1, f + 2, 2*f + 3}}
	}
	return out
}

func readGolden(t *testing.T, name string) image.Image {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// compareGolden compares got with the golden picture: every pixel that is not
// magenta in the golden must match within tol levels per channel; every
// magenta strip (a label or title) must hold some dark ink in got.
func compareGolden(t *testing.T, got image.Image, name string, tol int) {
	t.Helper()
	want := readGolden(t, name)
	if got.Bounds().Size() != want.Bounds().Size() {
		t.Fatalf("%s: size %v, golden %v", name, got.Bounds().Size(), want.Bounds().Size())
	}
	bad := 0
	w, h := want.Bounds().Dx(), want.Bounds().Dy()
	for y := range h {
		for x := range w {
			wc := color.RGBAModel.Convert(want.At(x, y)).(color.RGBA)
			if wc == gridMask {
				continue
			}
			gc := color.RGBAModel.Convert(got.At(got.Bounds().Min.X+x, got.Bounds().Min.Y+y)).(color.RGBA)
			if d := max(absDiff(gc.R, wc.R), absDiff(gc.G, wc.G), absDiff(gc.B, wc.B)); d > tol {
				if bad < 5 {
					t.Errorf("%s: pixel (%d,%d) = %v, golden %v", name, x, y, gc, wc)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d pixels differ by more than %d levels", name, bad, tol)
	}
	for _, r := range maskStrips(want) {
		if !hasInk(got, r) {
			t.Errorf("%s: the text strip %v holds no text", name, r)
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// maskStrips finds the magenta rectangles of a golden picture: each run of
// magenta starting a row, extended down while the pixel below is magenta.
func maskStrips(img image.Image) []image.Rectangle {
	b := img.Bounds()
	isMask := func(x, y int) bool {
		return image.Pt(x, y).In(b) && color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == gridMask
	}
	var out []image.Rectangle
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if !isMask(x, y) || isMask(x-1, y) || isMask(x, y-1) {
				continue
			}
			r := image.Rectangle{Min: image.Pt(x, y), Max: image.Pt(x+1, y+1)}
			for isMask(r.Max.X, y) {
				r.Max.X++
			}
			for isMask(x, r.Max.Y) {
				r.Max.Y++
			}
			out = append(out, r)
		}
	}
	return out
}

// hasInk reports whether r holds a dark pixel: text drawn in ink.
func hasInk(img image.Image, r image.Rectangle) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y < 100 {
				return true
			}
		}
	}
	return false
}

func TestGridTextFitsItsStrips(t *testing.T) {
	for _, c := range []struct{ size, strip int }{{gridLabelSize, GridLabelHeight}, {gridTitleSize, GridTitleHeight}} {
		face, err := newFace(float64(c.size))
		if err != nil {
			t.Fatal(err)
		}
		if lh := lineHeight(face); lh > c.strip {
			t.Errorf("text of size %d is %d pixels high, its strip %d", c.size, lh, c.strip)
		}
		face.Close()
	}
}

func TestFilterGridGolden(t *testing.T) {
	for _, c := range []struct {
		cmap Colormap
		file string
	}{{Grey, "grid_grey.png"}, {Viridis, "grid_viridis.png"}} {
		b := FilterGrid(fiveMaps()...).TileSize(32).Colormap(c.cmap)
		if b.Pages() != 1 {
			t.Fatalf("5 tiles take %d pages", b.Pages())
		}
		img, err := b.Image()
		if err != nil {
			t.Fatal(err)
		}
		compareGolden(t, img, c.file, 1)
		if strips := maskStrips(readGolden(t, c.file)); len(strips) != 5 {
			t.Errorf("%s has %d label strips, want 5", c.file, len(strips))
		}
	}
}

func TestFilterGridPages(t *testing.T) {
	b := FilterGrid(tenMaps()...).PerPage(4).TileSize(48).Colormap(Turbo)
	if n := b.Pages(); n != 3 {
		t.Fatalf("10 tiles at 4 a page take %d pages, want 3", n)
	}
	if first, end := b.PageTiles(1); first != 4 || end != 8 {
		t.Errorf("PageTiles(1) = %d, %d, want 4, 8", first, end)
	}
	if first, end := b.PageTiles(2); first != 8 || end != 10 {
		t.Errorf("PageTiles(2) = %d, %d, want 8, 10", first, end)
	}
	page2, err := b.Page(1)
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, page2, "grid_turbo_page2.png", 1)

	// The last page keeps the two columns and has one row.
	page3, err := b.Page(2)
	if err != nil {
		t.Fatal(err)
	}
	wantW, wantH := 2*GridMargin+2*48+GridGap, 2*GridMargin+GridTitleHeight+GridLabelHeight+48
	if s := page3.Bounds().Size(); s.X != wantW || s.Y != wantH {
		t.Errorf("page 3 is %v, want %dx%d", s, wantW, wantH)
	}
	all, err := b.Images()
	if err != nil || len(all) != 3 {
		t.Fatalf("Images() = %d pages, %v", len(all), err)
	}
	if _, err := b.Image(); err == nil || !strings.Contains(err.Error(), "3 pages") {
		t.Errorf("Image() of 3 pages: %v, want an error naming the pages", err)
	}
	if _, err := b.Page(3); err == nil {
		t.Error("Page(3) of 3 succeeded")
	}
	if _, err := b.Page(-1); err == nil {
		t.Error("Page(-1) succeeded")
	}
}

func TestFilterGridDefaultsAndLabels(t *testing.T) {
	// 7x7 maps, the default tile aims at 96 pixels: 13x enlargement, 91 pixels.
	maps := make([]heatmap.Map, 2)
	for i := range maps {
		maps[i], _ = heatmap.New(7, 7, nil)
	}
	img, err := FilterGrid(maps...).Labels("", "7").Image()
	if err != nil {
		t.Fatal(err)
	}
	// Two tiles: two columns, one row, no title.
	if s := img.Bounds().Size(); s.X != 2*GridMargin+2*91+GridGap || s.Y != 2*GridMargin+GridLabelHeight+91 {
		t.Errorf("grid of two 7x7 maps is %v", s)
	}
	strip := func(col int) image.Rectangle {
		x := GridMargin + col*(91+GridGap)
		return image.Rect(x, GridMargin, x+91, GridMargin+GridLabelHeight)
	}
	if hasInk(img, strip(0)) {
		t.Error("the empty label was drawn")
	}
	if !hasInk(img, strip(1)) {
		t.Error("label \"7\" was not drawn")
	}
	// A constant (blank) map is drawn in the colormap's first colour.
	tile := img.At(GridMargin+45, GridMargin+GridLabelHeight+45)
	if got, want := color.RGBAModel.Convert(tile), Viridis.Index(0); got != want {
		t.Errorf("blank tile drawn %v, want Viridis' first colour %v", got, want)
	}
}

func TestImageGrid(t *testing.T) {
	red, blue := color.RGBA{200, 10, 10, 255}, color.RGBA{10, 10, 200, 255}
	small := image.NewRGBA(image.Rect(0, 0, 2, 2))
	small.SetRGBA(0, 0, red)
	small.SetRGBA(1, 0, blue)
	small.SetRGBA(0, 1, blue)
	small.SetRGBA(1, 1, red)
	img, err := ImageGrid(small).TileSize(24).Image()
	if err != nil {
		t.Fatal(err)
	}
	y0 := GridMargin + GridLabelHeight
	for _, c := range []struct {
		x, y int
		want color.RGBA
	}{{0, 0, red}, {11, 11, red}, {12, 0, blue}, {23, 11, blue}, {0, 12, blue}, {23, 23, red}} {
		if got := color.RGBAModel.Convert(img.At(GridMargin+c.x, y0+c.y)); got != c.want {
			t.Errorf("tile pixel (%d,%d) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
	// A large image is reduced to the tile size, keeping its aspect.
	wide := image.NewRGBA(image.Rect(0, 0, 200, 100))
	for i := 0; i < len(wide.Pix); i += 4 {
		copy(wide.Pix[i:], []uint8{30, 120, 90, 255})
	}
	img, err = ImageGrid(wide, wide).TileSize(50).Image()
	if err != nil {
		t.Fatal(err)
	}
	if s := img.Bounds().Size(); s.X != 2*GridMargin+2*50+GridGap || s.Y != 2*GridMargin+GridLabelHeight+25 {
		t.Errorf("grid of two 200x100 images at tile 50 is %v", s)
	}
	if got := color.RGBAModel.Convert(img.At(GridMargin+60+GridGap, y0+20)); got != (color.RGBA{30, 120, 90, 255}) {
		t.Errorf("reduced uniform image changed colour: %v", got)
	}
}

func TestGridBadInput(t *testing.T) {
	m4, _ := heatmap.New(4, 4, nil)
	m3, _ := heatmap.New(3, 4, nil)
	for _, c := range []struct {
		name string
		b    *GridBuilder
		want string
	}{
		{"empty", FilterGrid(), "no tiles"},
		{"mixed sizes", FilterGrid(m4, m3), "one size"},
		{"labels", FilterGrid(m4, m4).Labels("a"), "2 tiles but 1 labels"},
		{"tile", FilterGrid(m4).TileSize(8), "minimum"},
		{"per page", FilterGrid(m4).PerPage(0), "PerPage"},
		{"bad map", FilterGrid(heatmap.Map{Width: 2, Height: 2, Values: []float32{1}}), "values"},
		{"nil image", ImageGrid(nil), "image 0 is nil"},
	} {
		_, err := c.b.Images()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
