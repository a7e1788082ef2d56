package display

import (
	"errors"
	"fmt"
	"image"
	"image/draw"

	"github.com/convlens/convlens/heatmap"
	"golang.org/x/image/font"
)

// Layout of composed pictures, in pixels.
const (
	margin        = 10 // around a picture
	gap           = 10 // between columns
	captionSize   = 16 // font size of captions
	labelSize     = 13 // font size of scale labels and column headings
	colorbarWidth = 16 // width of the colour strip of a colour bar
	tickLength    = 4
)

// A ColorbarBuilder draws the scale of a colormap: a vertical strip with
// the highest value at the top, labelled with the values at its ends and
// middle. Create one with Colorbar.
type ColorbarBuilder struct {
	cmap   Colormap
	rng    valueRange
	height int
}

// Colorbar starts building a colour bar for cmap spanning the values lo
// (bottom) to hi (top). The default height is 256 pixels.
func Colorbar(cmap Colormap, lo, hi float32) *ColorbarBuilder {
	return &ColorbarBuilder{cmap: cmap, rng: valueRange{lo, hi}, height: 256}
}

// Height sets the height of the whole picture in pixels, labels included.
func (b *ColorbarBuilder) Height(h int) *ColorbarBuilder { b.height = h; return b }

// Image renders the colour bar, dark text on white.
func (b *ColorbarBuilder) Image() (image.Image, error) {
	face, err := newFace(labelSize)
	if err != nil {
		return nil, err
	}
	defer face.Close()
	img, err := b.render(face)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Show displays the picture inline in a GoNB notebook (see [Show]).
func (b *ColorbarBuilder) Show() error { return showImage(b.Image()) }

// Save writes the picture to path as a PNG file, atomically (see [SavePNG]).
func (b *ColorbarBuilder) Save(path string) error { return saveImage(path, b.Image) }

func (b *ColorbarBuilder) render(face font.Face) (*image.RGBA, error) {
	if err := b.rng.validate(); err != nil {
		return nil, err
	}
	lh := lineHeight(face)
	pad := lh/2 + 1 // room for the end labels, which are centred on the ends
	barH := b.height - 2*pad
	if barH < 2 {
		return nil, fmt.Errorf("display: colour bar height %d too small (minimum %d)", b.height, 2*pad+2)
	}
	if err := checkSize("Colorbar: picture", colorbarWidth, b.height); err != nil {
		return nil, err
	}
	lo, hi := float64(b.rng.lo), float64(b.rng.hi)
	labels := []struct {
		y    int // centre of the label
		text string
	}{
		{pad, formatValue(hi)},
		{pad + barH/2, formatValue((lo + hi) / 2)},
		{pad + barH - 1, formatValue(lo)},
	}
	labelW := 0
	for _, l := range labels {
		labelW = max(labelW, textWidth(face, l.text))
	}
	width := 1 + colorbarWidth + 1 + tickLength + 3 + labelW + 1
	if err := checkSize("Colorbar: picture", width, b.height); err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, width, b.height))
	draw.Draw(img, img.Bounds(), image.NewUniform(paperColor), image.Point{}, draw.Src)

	// The strip: row y shows the value at its centre.
	for y := 0; y < barH; y++ {
		t := 1 - (float64(y)+0.5)/float64(barH)
		c := b.cmap.At(t)
		draw.Draw(img, image.Rect(1, pad+y, 1+colorbarWidth, pad+y+1), image.NewUniform(c), image.Point{}, draw.Src)
	}
	// Frame and ticks in ink, so the scale reads without colour.
	ink := image.NewUniform(inkColor)
	frame := image.Rect(0, pad-1, colorbarWidth+2, pad+barH+1)
	for _, r := range []image.Rectangle{
		{frame.Min, image.Pt(frame.Max.X, frame.Min.Y+1)},
		{image.Pt(frame.Min.X, frame.Max.Y-1), frame.Max},
		{frame.Min, image.Pt(frame.Min.X+1, frame.Max.Y)},
		{image.Pt(frame.Max.X-1, frame.Min.Y), frame.Max},
	} {
		draw.Draw(img, r, ink, image.Point{}, draw.Src)
	}
	x0 := colorbarWidth + 2
	for _, l := range labels {
		draw.Draw(img, image.Rect(x0, l.y, x0+tickLength, l.y+1), ink, image.Point{}, draw.Src)
		drawText(img, face, x0+tickLength+3, l.y-lh/2, l.text, inkColor)
	}
	return img, nil
}

// A PanelBuilder lays out one image, its heat map and their overlay side by
// side, with a colour bar and an optional caption. Create one with Panel.
type PanelBuilder struct {
	ov       OverlayBuilder
	caption  string
	colorbar bool
}

// Panel starts building the picture
//
//	caption
//	image | heat map | overlay | colour bar
//
// for base and the map m. The heat map is shown at the size of the image.
// It has the same options and defaults as Overlay; the colour bar is on by
// default.
func Panel(base image.Image, m heatmap.Map) *PanelBuilder {
	return &PanelBuilder{ov: *Overlay(base, m), colorbar: true}
}

// Colormap sets the colormap (default Jet).
func (b *PanelBuilder) Colormap(c Colormap) *PanelBuilder { b.ov.cmap = c; return b }

// Alpha sets the heat map's weight in the overlay (default 0.5).
func (b *PanelBuilder) Alpha(a float64) *PanelBuilder { b.ov.alpha = a; return b }

// Range sets the values at the ends of the colormap (default 0 and 1).
func (b *PanelBuilder) Range(lo, hi float32) *PanelBuilder {
	b.ov.rng = valueRange{lo, hi}
	return b
}

// Caption sets a line of text shown above the pictures, such as the
// predicted class and its score.
func (b *PanelBuilder) Caption(s string) *PanelBuilder { b.caption = s; return b }

// Colorbar turns the colour bar on or off.
func (b *PanelBuilder) Colorbar(on bool) *PanelBuilder { b.colorbar = on; return b }

// Image renders the panel, dark text on white.
func (b *PanelBuilder) Image() (image.Image, error) {
	f, err := newFaces()
	if err != nil {
		return nil, err
	}
	defer f.close()
	p, err := b.parts(f)
	if err != nil {
		return nil, err
	}
	img, err := compose([]panelParts{p}, false, f)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Show displays the panel in the running GoNB notebook cell, or falls back
// as Show does.
func (b *PanelBuilder) Show() error { return showImage(b.Image()) }

// Save writes the picture to path as a PNG file, atomically (see [SavePNG]).
func (b *PanelBuilder) Save(path string) error { return saveImage(path, b.Image) }

// faces holds the font faces used to compose panels.
type faces struct{ caption, label font.Face }

func newFaces() (*faces, error) {
	c, err := newFace(captionSize)
	if err != nil {
		return nil, err
	}
	l, err := newFace(labelSize)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &faces{c, l}, nil
}

func (f *faces) close() { f.caption.Close(); f.label.Close() }

// panelParts are the pictures of one panel.
type panelParts struct {
	caption                string
	base, heat, overlay    image.Image
	colorbar               image.Image // nil when off
	width, height, columnW int         // size of the row of pictures; width of one column
}

func (b *PanelBuilder) parts(f *faces) (panelParts, error) {
	overlay, heat, err := b.ov.render()
	if err != nil {
		return panelParts{}, err
	}
	var base image.Image = b.ov.base
	w, h := overlay.Bounds().Dx(), overlay.Bounds().Dy()
	// Small pictures (a 28×28 digit) are enlarged by a whole factor, so
	// that the captions and headings fit over them and their pixels show.
	if f := minPanelSide / max(w, h); f > 1 {
		w, h = w*f, h*f
		pics := []image.Image{base, heat, overlay}
		for i, pic := range pics {
			if pics[i], err = scaleImage(pic, w, h); err != nil {
				return panelParts{}, err
			}
		}
		base, heat, overlay = pics[0], pics[1].(*image.RGBA), pics[2].(*image.RGBA)
	}
	p := panelParts{caption: b.caption, base: base, heat: heat, overlay: overlay, columnW: w, height: h}
	p.width = 3*w + 2*gap
	if b.colorbar {
		cb := ColorbarBuilder{cmap: b.ov.cmap, rng: b.ov.rng, height: max(h, 4*lineHeight(f.label)+2)}
		img, err := cb.render(f.label)
		if err != nil {
			return panelParts{}, err
		}
		p.colorbar = img
		p.width += gap + img.Bounds().Dx()
		p.height = max(p.height, img.Bounds().Dy())
	}
	return p, nil
}

// minPanelSide is the size below which panel pictures are enlarged.
const minPanelSide = 112

// Column headings of Rows.
var columnHeadings = [3]string{"image", "heat map", "overlay"}

// compose stacks panels vertically on white, each with its caption line,
// with a line of column headings on top if headings is true. A picture of
// more than heatmap.MaxPixels pixels is an error.
func compose(panels []panelParts, headings bool, f *faces) (*image.RGBA, error) {
	capH := lineHeight(f.caption) + 4
	headH := lineHeight(f.label) + 4
	width, height := 0, margin
	if headings {
		height += headH
	}
	for i, p := range panels {
		width = max(width, p.width)
		if i > 0 {
			height += gap
		}
		if p.caption != "" {
			height += capH
		}
		height += p.height
	}
	for _, p := range panels {
		if p.caption != "" {
			width = max(width, textWidth(f.caption, p.caption))
		}
	}
	width += 2 * margin
	height += margin
	if err := checkSize("picture of the panels", width, height); err != nil {
		return nil, err
	}

	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(paperColor), image.Point{}, draw.Src)
	y := margin
	if headings && len(panels) > 0 {
		cw := panels[0].columnW
		for i, s := range columnHeadings {
			x := margin + i*(cw+gap) + (cw-textWidth(f.label, s))/2
			drawText(img, f.label, max(x, margin), y, s, inkColor)
		}
		y += headH
	}
	for i, p := range panels {
		if i > 0 {
			y += gap
		}
		if p.caption != "" {
			drawText(img, f.caption, margin, y, p.caption, inkColor)
			y += capH
		}
		x := margin
		for _, pic := range []image.Image{p.base, p.heat, p.overlay, p.colorbar} {
			if pic == nil {
				continue
			}
			r := pic.Bounds()
			draw.Draw(img, image.Rect(x, y, x+r.Dx(), y+r.Dy()), pic, r.Min, draw.Src)
			x += r.Dx() + gap
		}
		y += p.height
	}
	return img, nil
}

// A Row is one image of a batch with its map and caption, for Rows.
type Row struct {
	Image   image.Image
	Map     heatmap.Map
	Caption string // e.g. "tabby cat (281)  score 0.874"
}

// A RowsBuilder stacks one panel per image of a batch. Create one with Rows.
type RowsBuilder struct {
	rows     []Row
	panel    PanelBuilder // options shared by all rows
	headings bool
}

// Rows starts building a picture with one panel (see Panel) per row, each
// under its caption, and the column headings "image", "heat map",
// "overlay" on top. All panels share the options set on the builder.
func Rows(rows ...Row) *RowsBuilder {
	return &RowsBuilder{rows: rows, panel: *Panel(nil, heatmap.Map{}), headings: true}
}

// Colormap sets the colormap (default Jet).
func (b *RowsBuilder) Colormap(c Colormap) *RowsBuilder { b.panel.Colormap(c); return b }

// Alpha sets the heat map's weight in the overlays (default 0.5).
func (b *RowsBuilder) Alpha(a float64) *RowsBuilder { b.panel.Alpha(a); return b }

// Range sets the values at the ends of the colormap (default 0 and 1).
func (b *RowsBuilder) Range(lo, hi float32) *RowsBuilder { b.panel.Range(lo, hi); return b }

// Colorbar turns the colour bars on or off (default on).
func (b *RowsBuilder) Colorbar(on bool) *RowsBuilder { b.panel.Colorbar(on); return b }

// Headings turns the line of column headings on or off (default on).
func (b *RowsBuilder) Headings(on bool) *RowsBuilder { b.headings = on; return b }

// Image renders all rows into one picture, dark text on white.
func (b *RowsBuilder) Image() (image.Image, error) {
	if len(b.rows) == 0 {
		return nil, errors.New("display: Rows needs at least one row")
	}
	f, err := newFaces()
	if err != nil {
		return nil, err
	}
	defer f.close()
	panels := make([]panelParts, len(b.rows))
	for i, r := range b.rows {
		pb := b.panel
		pb.ov.base, pb.ov.m, pb.caption = r.Image, r.Map, r.Caption
		panels[i], err = pb.parts(f)
		if err != nil {
			return nil, fmt.Errorf("display: row %d: %w", i, err)
		}
	}
	img, err := compose(panels, b.headings, f)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Show displays the picture of all rows in the running GoNB notebook cell,
// or falls back as Show does.
func (b *RowsBuilder) Show() error { return showImage(b.Image()) }

// Save writes the picture to path as a PNG file, atomically (see [SavePNG]).
func (b *RowsBuilder) Save(path string) error { return saveImage(path, b.Image) }
