package display

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"math"
	"strconv"

	"github.com/convlens/convlens/heatmap"
)

// Geometry of grids, in pixels. It is fixed (not derived from font metrics)
// so that a grid's layout can be computed, and tested, without rendering any
// text:
//
//	width  = 2*GridMargin + cols*tileW + (cols-1)*GridGap, or wider if the title needs it
//	height = 2*GridMargin + [GridTitleHeight if there is a title]
//	         + rows*(GridLabelHeight+tileH) + (rows-1)*GridGap
//
// Tile k of a page sits in column k%cols and row k/cols: its label strip
// (GridLabelHeight high, the tile's width) starts at
//
//	x = GridMargin + col*(tileW+GridGap)
//	y = GridMargin + [GridTitleHeight] + row*(GridLabelHeight+tileH+GridGap)
//
// and the tile itself starts GridLabelHeight below that.
const (
	GridMargin      = 8  // around the grid
	GridGap         = 6  // between tiles, horizontally and vertically
	GridLabelHeight = 15 // strip above each tile holding its label
	GridTitleHeight = 22 // line at the top holding the title, when there is one

	// DefaultGridPerPage is how many tiles a page holds unless set with
	// GridBuilder.PerPage: an 8x8 sheet, readable on a screen or a page.
	DefaultGridPerPage = 64
	// MinGridTile is the smallest tile side GridBuilder.TileSize accepts:
	// below it a four-digit channel index no longer fits above its tile.
	MinGridTile = 24
	// defaultGridTile is the tile side aimed at when none is set.
	defaultGridTile = 96
)

// Font sizes of grid text: labels and title fit their strips.
const (
	gridLabelSize = 12
	gridTitleSize = 15
)

// A GridBuilder tiles many small pictures (the channels of a feature map,
// or one synthesised image per channel) in a near-square grid, each under
// its label, and splits them over pages when there are too many for one
// sheet. Create one with FilterGrid or ImageGrid.
type GridBuilder struct {
	maps    []heatmap.Map // FilterGrid
	images  []image.Image // ImageGrid
	labels  []string
	cmap    Colormap
	tile    int // 0: automatic
	perPage int
	title   string
}

// FilterGrid starts building the classic picture of a convolutional layer's
// output: one tile per channel map. Each map is normalised to [0, 1] on its
// own (heatmap.Map.Normalized: min-max, so a constant map, such as a blank channel
// of a ReLU layer, is drawn in the colormap's first colour), then coloured
// with the colormap (default Viridis; see Colormap.At for the
// quantisation).
//
// All maps must have the same size. Each tile is labelled with its index in
// maps unless Labels says otherwise; a feature map's channel numbers are
// the usual labels.
func FilterGrid(maps ...heatmap.Map) *GridBuilder {
	return &GridBuilder{maps: maps, cmap: Viridis, perPage: DefaultGridPerPage}
}

// TileGrid is FilterGrid of t's maps, labelled and titled as t says: a grid
// of the tiles featuremaps returns.
func TileGrid(t heatmap.Tiles) *GridBuilder {
	return FilterGrid(t.Maps...).Labels(t.Labels...).Title(t.Title)
}

// ImageGrid starts building a grid of pictures, such as the images
// synthesised by feature visualisation, one per channel. All images must
// have the same size. Transparent pixels are composited over white.
func ImageGrid(images ...image.Image) *GridBuilder {
	return &GridBuilder{images: images, cmap: Viridis, perPage: DefaultGridPerPage}
}

// Labels sets the tiles' labels, one per tile, for example channel indices
// when the grid shows a selection of channels. The default labels are the
// tile indices 0, 1, 2, ...
func (b *GridBuilder) Labels(labels ...string) *GridBuilder { b.labels = labels; return b }

// Colormap sets the colormap of a FilterGrid (default Viridis). It has no
// effect on an ImageGrid.
func (b *GridBuilder) Colormap(c Colormap) *GridBuilder { b.cmap = c; return b }

// TileSize sets the side, in pixels, that the longer side of a tile aims
// at (at least MinGridTile). A tile smaller than that is enlarged by the
// largest whole factor that fits, every value becoming a block of pixels
// (no interpolation, so what is drawn is what was computed); a larger one
// is reduced to exactly px with bilinear interpolation (see heatmap.Map.Resize).
// The default aims at 96 pixels: a 7x7 map is drawn 91x91, a 224x224 map
// 96x96. A tile or page of more than heatmap.MaxPixels pixels is an error
// when a page is rendered.
func (b *GridBuilder) TileSize(px int) *GridBuilder { b.tile = px; return b }

// PerPage sets the most tiles a page holds (default DefaultGridPerPage).
// The columns are chosen for a near-square first page, ceil(sqrt(n)) for
// n = min(tiles, perPage), and every page has the same columns.
func (b *GridBuilder) PerPage(n int) *GridBuilder { b.perPage = n; return b }

// Title sets a line of text drawn above the grid, such as the layer's name
// and shape. When the grid has more than one page, each page's title ends
// with "(page i of n)"; without a title that is the whole line.
func (b *GridBuilder) Title(s string) *GridBuilder { b.title = s; return b }

// Len returns the number of tiles.
func (b *GridBuilder) Len() int { return max(len(b.maps), len(b.images)) }

// Pages returns the number of pages the grid takes: at least 1, even for
// an empty grid (which Page reports as an error).
func (b *GridBuilder) Pages() int {
	if b.perPage < 1 || b.Len() == 0 {
		return 1
	}
	return (b.Len() + b.perPage - 1) / b.perPage
}

// PageTiles returns the tiles on page i: indices first to end-1.
func (b *GridBuilder) PageTiles(i int) (first, end int) {
	if b.perPage < 1 {
		return 0, 0
	}
	first = min(i*b.perPage, b.Len())
	return first, min(first+b.perPage, b.Len())
}

// Image renders a grid that fits on one page; for more tiles it returns an
// error that says how many pages there are (use Page or Images).
func (b *GridBuilder) Image() (image.Image, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if n := b.Pages(); n > 1 {
		return nil, fmt.Errorf("display: grid of %d tiles takes %d pages of at most %d: render them with Page or Images",
			b.Len(), n, b.perPage)
	}
	return b.Page(0)
}

// Images renders every page.
func (b *GridBuilder) Images() ([]image.Image, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	pages := make([]image.Image, b.Pages())
	for i := range pages {
		img, err := b.Page(i)
		if err != nil {
			return nil, err
		}
		pages[i] = img
	}
	return pages, nil
}

// Show displays every page in the running GoNB notebook cell, or falls back
// as Show does.
func (b *GridBuilder) Show() error {
	pages, err := b.Images()
	if err != nil {
		return err
	}
	for _, p := range pages {
		if err := Show(p); err != nil {
			return err
		}
	}
	return nil
}

// Page renders page i (from 0) as an opaque *image.RGBA, dark text on white.
func (b *GridBuilder) Page(i int) (image.Image, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	n := b.Pages()
	if i < 0 || i >= n {
		return nil, fmt.Errorf("display: grid page %d out of range: it has %d page(s), numbered from 0", i, n)
	}
	tw, th, err := b.tileSize()
	if err != nil {
		return nil, err
	}
	if err := checkSize("grid tile", tw, th); err != nil {
		return nil, err
	}
	first, end := b.PageTiles(i)
	cols := gridColumns(min(b.Len(), b.perPage))
	rows := (end - first + cols - 1) / cols
	title := b.title
	if n > 1 {
		page := fmt.Sprintf("(page %d of %d)", i+1, n)
		if title == "" {
			title = page
		} else {
			title += " " + page
		}
	}
	top := GridMargin
	if title != "" {
		top += GridTitleHeight
	}
	width := 2*GridMargin + cols*tw + (cols-1)*GridGap
	height := top + rows*(GridLabelHeight+th) + (rows-1)*GridGap + GridMargin
	labelFace, err := newFace(gridLabelSize)
	if err != nil {
		return nil, err
	}
	defer labelFace.Close()
	titleFace, err := newFace(gridTitleSize)
	if err != nil {
		return nil, err
	}
	defer titleFace.Close()
	if title != "" {
		width = max(width, 2*GridMargin+textWidth(titleFace, title))
	}
	if err := checkSize("grid page", width, height); err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(paperColor), image.Point{}, draw.Src)
	if title != "" {
		strip := img.SubImage(image.Rect(GridMargin, GridMargin, width-GridMargin, GridMargin+GridTitleHeight)).(*image.RGBA)
		drawText(strip, titleFace, GridMargin, GridMargin+(GridTitleHeight-lineHeight(titleFace))/2, title, inkColor)
	}
	for k := first; k < end; k++ {
		col, row := (k-first)%cols, (k-first)/cols
		x := GridMargin + col*(tw+GridGap)
		y := top + row*(GridLabelHeight+th+GridGap)
		// The label, clipped to its strip so a long one cannot spill into a neighbour.
		strip := img.SubImage(image.Rect(x, y, x+tw, y+GridLabelHeight)).(*image.RGBA)
		drawText(strip, labelFace, x, y+(GridLabelHeight-lineHeight(labelFace))/2, b.label(k), inkColor)
		tile, err := b.renderTile(k, tw, th)
		if err != nil {
			return nil, err
		}
		draw.Draw(img, image.Rect(x, y+GridLabelHeight, x+tw, y+GridLabelHeight+th), tile, image.Point{}, draw.Src)
	}
	return img, nil
}

// gridColumns is the number of columns of a near-square grid of n tiles.
func gridColumns(n int) int {
	c := int(math.Ceil(math.Sqrt(float64(n))))
	for c*c < n { // guard against rounding in Sqrt
		c++
	}
	return max(c, 1)
}

func (b *GridBuilder) label(k int) string {
	if b.labels != nil {
		return b.labels[k]
	}
	return strconv.Itoa(k)
}

var errEmptyGrid = errors.New("display: grid has no tiles")

// validate checks what every page needs.
func (b *GridBuilder) validate() error {
	switch {
	case b.maps != nil && b.images != nil:
		return errors.New("display: grid has both maps and images")
	case b.Len() == 0:
		return errEmptyGrid
	case b.perPage < 1:
		return fmt.Errorf("display: grid PerPage %d: want at least 1", b.perPage)
	case b.tile != 0 && b.tile < MinGridTile:
		return fmt.Errorf("display: grid tile size %d below the minimum %d", b.tile, MinGridTile)
	case b.labels != nil && len(b.labels) != b.Len():
		return fmt.Errorf("display: grid has %d tiles but %d labels", b.Len(), len(b.labels))
	}
	w, h, err := b.sourceSize(0)
	if err != nil {
		return err
	}
	for k := 1; k < b.Len(); k++ {
		wk, hk, err := b.sourceSize(k)
		if err != nil {
			return err
		}
		if wk != w || hk != h {
			return fmt.Errorf("display: grid tile %d is %dx%d but tile 0 is %dx%d: all tiles must have one size", k, wk, hk, w, h)
		}
	}
	return nil
}

// sourceSize is the size of tile k before scaling.
func (b *GridBuilder) sourceSize(k int) (w, h int, err error) {
	if b.maps != nil {
		if err := b.maps[k].Validate(); err != nil {
			return 0, 0, fmt.Errorf("grid tile %d: %w", k, err)
		}
		return b.maps[k].Width, b.maps[k].Height, nil
	}
	img := b.images[k]
	if err := checkImage(fmt.Sprintf("ImageGrid: image %d", k), img); err != nil {
		return 0, 0, err
	}
	r := img.Bounds()
	return r.Dx(), r.Dy(), nil
}

// tileSize is the size tiles are drawn at (see TileSize).
func (b *GridBuilder) tileSize() (w, h int, err error) {
	sw, sh, err := b.sourceSize(0)
	if err != nil {
		return 0, 0, err
	}
	target := b.tile
	if target == 0 {
		target = defaultGridTile
	}
	long := max(sw, sh)
	if long <= target {
		f := target / long
		return sw * f, sh * f, nil
	}
	w = max(1, int(math.Round(float64(sw)*float64(target)/float64(long))))
	h = max(1, int(math.Round(float64(sh)*float64(target)/float64(long))))
	return w, h, nil
}

// renderTile draws tile k at w x h pixels.
func (b *GridBuilder) renderTile(k, w, h int) (*image.RGBA, error) {
	if b.maps != nil {
		m := b.maps[k].Normalized()
		if w >= m.Width { // tileSize enlarges by a whole factor
			m = upscale(m, w/m.Width)
		} else {
			var err error
			if m, err = m.Resize(w, h); err != nil {
				return nil, err
			}
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for i, v := range m.Values {
			c := b.cmap.Index(quantize(v))
			copy(img.Pix[4*i:4*i+4], []uint8{c.R, c.G, c.B, c.A})
		}
		return img, nil
	}
	return scaleImage(b.images[k], w, h)
}

// upscale repeats every value of m as an f x f block.
func upscale(m heatmap.Map, f int) heatmap.Map {
	if f == 1 {
		return m
	}
	out := heatmap.Map{Width: m.Width * f, Height: m.Height * f, Values: make([]float32, m.Width*m.Height*f*f)}
	for y := range out.Height {
		for x := range out.Width {
			out.Values[y*out.Width+x] = m.Values[(y/f)*m.Width+x/f]
		}
	}
	return out
}

// scaleImage draws img at w x h over white: by whole-factor pixel
// repetition when enlarging, else bilinearly per channel.
func scaleImage(img image.Image, w, h int) (*image.RGBA, error) {
	if err := checkImage("image", img); err != nil {
		return nil, err
	}
	if err := checkSize("scaled image", w, h); err != nil {
		return nil, err
	}
	r := img.Bounds()
	src := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(src, src.Bounds(), image.NewUniform(paperColor), image.Point{}, draw.Src)
	draw.Draw(src, src.Bounds(), img, r.Min, draw.Over)
	if w == r.Dx() && h == r.Dy() {
		return src, nil
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	if w > r.Dx() { // tileSize enlarges by a whole factor
		f := w / r.Dx()
		for y := range h {
			for x := range w {
				out.SetRGBA(x, y, src.RGBAAt(x/f, y/f))
			}
		}
		return out, nil
	}
	for c := range 3 {
		plane := heatmap.Map{Width: r.Dx(), Height: r.Dy(), Values: make([]float32, r.Dx()*r.Dy())}
		for i := range plane.Values {
			plane.Values[i] = float32(src.Pix[4*i+c])
		}
		scaled, err := plane.Resize(w, h)
		if err != nil {
			return nil, err
		}
		for i, v := range scaled.Values {
			out.Pix[4*i+c] = uint8(min(max(math.Round(float64(v)), 0), 255))
		}
	}
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 0xff
	}
	return out, nil
}
