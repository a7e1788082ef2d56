package display

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sort"
	"strings"

	"golang.org/x/image/font"
)

// Static pictures of charts. A chart's script does not run everywhere its
// page or notebook is read: an untrusted notebook, an HTML export opened
// without scripts, GitHub's notebook viewer and print all drop it, and the
// chart would leave a blank gap. Chart.Image draws the same data as a
// picture, with the same title, axes, labels and colours, so that it can
// stand beside or in place of the interactive chart (Chart.NotebookHTML
// does that).

// chartPalette is ECharts' default series palette, so that the picture's
// colours are the interactive chart's.
var chartPalette = []color.RGBA{
	{0x54, 0x70, 0xc6, 0xff}, {0x91, 0xcc, 0x75, 0xff}, {0xfa, 0xc8, 0x58, 0xff},
	{0xee, 0x66, 0x66, 0xff}, {0x73, 0xc0, 0xde, 0xff}, {0x3b, 0xa2, 0x72, 0xff},
	{0xfc, 0x84, 0x52, 0xff}, {0x9a, 0x60, 0xb4, 0xff}, {0xea, 0x7c, 0xcc, 0xff},
}

var (
	axisColor  = color.RGBA{0x6e, 0x70, 0x79, 0xff} // ECharts' axis line
	splitColor = color.RGBA{0xe0, 0xe6, 0xf1, 0xff} // ECharts' split line
	missColor  = color.RGBA{0xee, 0xee, 0xee, 0xff} // a cell without a finite value
)

// Font sizes of chart pictures, as ECharts draws them.
const (
	chartTitleSize = 18
	chartTextSize  = 12
)

// Image draws the chart as a static picture of its size (see Size), white
// background: the bars, lines or cells with their values, the title (wrapped
// onto more lines rather than cut) and the axes, in the interactive chart's
// colours. It reports the errors the chart's rendering methods report.
func (c *Chart) Image() (image.Image, error) {
	w, h := c.size()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("display: invalid chart size %dx%d", w, h)
	}
	if err := checkSize("chart picture", w, h); err != nil {
		return nil, err
	}
	// The interactive chart validates the data; render it, so that both
	// forms of a chart accept and refuse the same charts.
	if _, err := c.snippet(); err != nil {
		return nil, err
	}
	title, err := newFace(chartTitleSize)
	if err != nil {
		return nil, err
	}
	defer title.Close()
	text, err := newFace(chartTextSize)
	if err != nil {
		return nil, err
	}
	defer text.Close()
	p := &chartPainter{img: image.NewRGBA(image.Rect(0, 0, w, h)), title: title, text: text}
	fill(p.img, p.img.Bounds(), paperColor)
	top := p.drawTitle(clean(c.title))
	switch c.kind {
	case heatmapChart:
		return p.img, c.drawHeatmap(p, top)
	case topKChart:
		return p.img, c.drawTopK(p, top)
	default:
		return p.img, c.drawLayers(p, top)
	}
}

// chartPainter holds a chart picture being drawn and its faces.
type chartPainter struct {
	img         *image.RGBA
	title, text font.Face
}

// drawTitle draws the title centred at the top, wrapped to the width, and
// returns the y where the plot may start.
func (p *chartPainter) drawTitle(s string) int {
	if s == "" {
		return 10
	}
	w := p.img.Bounds().Dx()
	lines := wrapText(p.title, s, w-20)
	lh := lineHeight(p.title) + 2
	y := 6
	for _, l := range lines {
		drawText(p.img, p.title, (w-textWidth(p.title, l))/2, y, l, inkColor)
		y += lh
	}
	return y + 8
}

// wrapText breaks s at spaces into lines no wider than width; a word wider
// than width is cut with an ellipsis.
func wrapText(face font.Face, s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		try := word
		if line != "" {
			try = line + " " + word
		}
		if textWidth(face, try) <= width || line == "" {
			line = try
			continue
		}
		lines = append(lines, line)
		line = word
	}
	if line != "" {
		lines = append(lines, line)
	}
	for i, l := range lines {
		lines[i] = ellipsize(face, l, width)
	}
	return lines
}

// ellipsize shortens s to width, cutting its middle, which keeps both the
// start and the end of a layer or class name readable.
func ellipsize(face font.Face, s string, width int) string {
	if textWidth(face, s) <= width {
		return s
	}
	r := []rune(s)
	for n := len(r) - 1; n > 1; n-- {
		head := (n + 1) / 2
		t := string(r[:head]) + "…" + string(r[len(r)-(n-head):])
		if textWidth(face, t) <= width {
			return t
		}
	}
	return "…"
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// niceTicks returns about n round values covering [lo, hi] (1, 2 or 5 times a
// power of ten apart), from the first at or below lo to the first at or
// above hi.
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(max(n, 1))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, f := range []float64{1, 2, 5, 10} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	var ticks []float64
	for v := math.Floor(lo/step) * step; ; v += step {
		// Round away the float noise of repeated addition.
		v = math.Round(v/step) * step
		ticks = append(ticks, v)
		if v >= hi-step*1e-9 || len(ticks) > 50 {
			break
		}
	}
	return ticks
}

// line draws a segment of the given width; dash is the on and off length
// of a dashed line in pixels (0 for solid).
func (p *chartPainter) line(x0, y0, x1, y1 float64, width float64, dash float64, c color.Color) {
	length := math.Hypot(x1-x0, y1-y0)
	steps := int(math.Ceil(length*2)) + 1
	r := width / 2
	for i := 0; i <= steps; i++ {
		t := float64(i) / float64(steps)
		if dash > 0 && int(t*length/dash)%2 == 1 {
			continue
		}
		p.disc(x0+t*(x1-x0), y0+t*(y1-y0), r, c)
	}
}

// disc fills the disc of radius r around (x, y).
func (p *chartPainter) disc(x, y, r float64, c color.Color) {
	for py := int(math.Floor(y - r)); py <= int(math.Ceil(y+r)); py++ {
		for px := int(math.Floor(x - r)); px <= int(math.Ceil(x+r)); px++ {
			if math.Hypot(float64(px)+0.5-x, float64(py)+0.5-y) <= r+0.25 {
				p.set(px, py, c)
			}
		}
	}
}

func (p *chartPainter) set(x, y int, c color.Color) {
	if image.Pt(x, y).In(p.img.Bounds()) {
		p.img.Set(x, y, c)
	}
}

// marker draws the named ECharts symbol of size s centred on (x, y).
func (p *chartPainter) marker(symbol string, x, y, s float64, c color.Color) {
	h := s / 2
	inside := func(dx, dy float64) bool {
		switch symbol {
		case "rect", "roundRect":
			return math.Abs(dx) <= h*0.85 && math.Abs(dy) <= h*0.85
		case "triangle":
			// Apex up; base at +h.
			return dy <= h && dy >= -h && math.Abs(dx) <= (dy+h)/2
		case "diamond":
			return math.Abs(dx)/h+math.Abs(dy)/(h*1.2) <= 1
		case "pin", "arrow":
			return math.Abs(dx) <= (h-dy)/2 && dy >= -h && dy <= h
		default: // circle
			return math.Hypot(dx, dy) <= h
		}
	}
	for py := int(math.Floor(y - s)); py <= int(math.Ceil(y+s)); py++ {
		for px := int(math.Floor(x - s)); px <= int(math.Ceil(x+s)); px++ {
			if inside(float64(px)+0.5-x, float64(py)+0.5-y) {
				p.set(px, py, c)
			}
		}
	}
}

func (c *Chart) drawTopK(p *chartPainter, top int) error {
	w, h := p.img.Bounds().Dx(), p.img.Bounds().Dy()
	idx := make([]int, len(c.scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return c.scores[idx[a]] > c.scores[idx[b]] })
	idx = idx[:min(c.k, len(idx))]
	names := make([]string, len(idx))
	values := make([]string, len(idx))
	lo, hi := 0.0, 0.0
	labelW, valueW := 0, 0
	for i, j := range idx {
		if c.labels != nil {
			names[i] = fmt.Sprintf("%s (%d)", clean(c.labels[j]), j)
		} else {
			names[i] = fmt.Sprintf("class %d", j)
		}
		names[i] = ellipsize(p.text, names[i], w*2/5)
		values[i] = string(number(float64(c.scores[j])))
		labelW = max(labelW, textWidth(p.text, names[i]))
		valueW = max(valueW, textWidth(p.text, values[i]))
		lo, hi = min(lo, float64(c.scores[j])), max(hi, float64(c.scores[j]))
	}
	ticks := niceTicks(lo, hi, 5)
	lo, hi = ticks[0], ticks[len(ticks)-1]
	lh := lineHeight(p.text)
	left, right := 20+labelW+8, w-max(70, valueW+16)
	bottom := h - 40
	if right-left < 20 || bottom-top < 10 {
		return fmt.Errorf("display: chart %dx%d too small for its %d bars", w, h, len(idx))
	}
	xOf := func(v float64) float64 { return float64(left) + (v-lo)/(hi-lo)*float64(right-left) }
	// Split lines and value axis.
	for _, t := range ticks {
		x := int(math.Round(xOf(t)))
		fill(p.img, image.Rect(x, top, x+1, bottom), splitColor)
		s := formatValue(t)
		drawText(p.img, p.text, x-textWidth(p.text, s)/2, bottom+6, s, axisColor)
	}
	if c.xName != "" {
		s := clean(c.xName)
		drawText(p.img, p.text, right+8, bottom-lh/2, ellipsize(p.text, s, w-right-10), axisColor)
	}
	row := float64(bottom-top) / float64(len(idx))
	zero := xOf(0)
	for i, j := range idx {
		yc := float64(top) + (float64(i)+0.5)*row
		bh := math.Min(row*0.6, 40)
		x0, x1 := zero, xOf(float64(c.scores[j]))
		if x1 < x0 {
			x0, x1 = x1, x0
		}
		fill(p.img, image.Rect(int(math.Round(x0)), int(math.Round(yc-bh/2)), int(math.Round(x1))+1, int(math.Round(yc+bh/2))), chartPalette[0])
		drawText(p.img, p.text, left-8-textWidth(p.text, names[i]), int(yc)-lh/2, names[i], axisColor)
		drawText(p.img, p.text, int(math.Round(xOf(float64(c.scores[j]))))+5, int(yc)-lh/2, values[i], inkColor)
	}
	// Category axis line at zero.
	fill(p.img, image.Rect(int(math.Round(zero)), top, int(math.Round(zero))+1, bottom), axisColor)
	return nil
}

func (c *Chart) drawLayers(p *chartPainter, top int) error {
	w, h := p.img.Bounds().Dx(), p.img.Bounds().Dy()
	lh := lineHeight(p.text)
	// Legend: one entry per series with its marker and dash.
	x := 0
	var entries []int
	for _, s := range c.series {
		entries = append(entries, 50+textWidth(p.text, clean(s.Name)))
		x += entries[len(entries)-1]
	}
	x = max(10, (w-x)/2)
	ly := top + lh/2
	for i, s := range c.series {
		col := chartPalette[i%len(chartPalette)]
		p.line(float64(x), float64(ly), float64(x+30), float64(ly), 2, dashLength(seriesDashes[i%len(seriesDashes)]), col)
		p.marker(seriesSymbols[i%len(seriesSymbols)], float64(x+15), float64(ly), 10, col)
		drawText(p.img, p.text, x+36, ly-lh/2, clean(s.Name), inkColor)
		x += entries[i]
	}
	top += 2*lh + 10

	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, v := range s.Values {
			if finite(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	lo = min(lo, 0)
	ticks := niceTicks(lo, hi, 5)
	lo, hi = ticks[0], ticks[len(ticks)-1]
	tickW := 0
	for _, t := range ticks {
		tickW = max(tickW, textWidth(p.text, formatValue(t)))
	}
	left, right := 20+tickW+8, w-40
	n := len(c.layers)
	step := float64(right-left) / float64(n)
	// Layer names under their points: on one row when they fit, else on
	// two staggered rows, each cut in the middle to what its row allows.
	names := make([]string, n)
	fits := true
	for i, l := range c.layers {
		names[i] = clean(l)
		if textWidth(p.text, names[i]) > int(step)-6 {
			fits = false
		}
	}
	rows := 1
	if !fits {
		rows = 2
		for i := range names {
			names[i] = ellipsize(p.text, names[i], int(2*step)-8)
		}
	}
	bottom := h - 24 - rows*(lh+4) - lh
	if right-left < 20 || bottom-top < 20 {
		return fmt.Errorf("display: chart %dx%d too small for its %d layers", w, h, n)
	}
	yOf := func(v float64) float64 { return float64(bottom) - (v-lo)/(hi-lo)*float64(bottom-top) }
	xOf := func(i int) float64 { return float64(left) + (float64(i)+0.5)*step }
	for _, t := range ticks {
		y := int(math.Round(yOf(t)))
		fill(p.img, image.Rect(left, y, right, y+1), splitColor)
		s := formatValue(t)
		drawText(p.img, p.text, left-8-textWidth(p.text, s), y-lh/2, s, axisColor)
	}
	if c.yName != "" {
		drawText(p.img, p.text, 10, top-lh-6, ellipsize(p.text, clean(c.yName), w/2), axisColor)
	}
	fill(p.img, image.Rect(left, bottom, right, bottom+1), axisColor)
	for i, name := range names {
		xc := int(math.Round(xOf(i)))
		fill(p.img, image.Rect(xc, bottom, xc+1, bottom+5), axisColor)
		y := bottom + 8 + (i%rows)*(lh+4)
		drawText(p.img, p.text, xc-textWidth(p.text, name)/2, y, name, axisColor)
	}
	if c.xName != "" {
		s := clean(c.xName)
		drawText(p.img, p.text, (left+right-textWidth(p.text, s))/2, h-8-lh, s, axisColor)
	}
	for si, s := range c.series {
		col := chartPalette[si%len(chartPalette)]
		dash := dashLength(seriesDashes[si%len(seriesDashes)])
		for i := 0; i+1 < len(s.Values); i++ {
			if finite(s.Values[i]) && finite(s.Values[i+1]) {
				p.line(xOf(i), yOf(s.Values[i]), xOf(i+1), yOf(s.Values[i+1]), 2, dash, col)
			}
		}
		for i, v := range s.Values {
			if !finite(v) {
				continue
			}
			p.marker(seriesSymbols[si%len(seriesSymbols)], xOf(i), yOf(v), 10, col)
			label := string(number(v))
			drawText(p.img, p.text, int(xOf(i))-textWidth(p.text, label)/2, int(yOf(v))-8-lh, label, inkColor)
		}
	}
	return nil
}

// dashLength is the on/off length of an ECharts line type.
func dashLength(style string) float64 {
	switch style {
	case "dashed":
		return 7
	case "dotted":
		return 2.5
	}
	return 0
}

func (c *Chart) drawHeatmap(p *chartPainter, top int) error {
	w, h := p.img.Bounds().Dx(), p.img.Bounds().Dy()
	m := c.m
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range m.Values {
		if f := float64(v); finite(f) {
			lo, hi = min(lo, f), max(hi, f)
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	if lo == hi {
		lo, hi = lo-0.5, hi+0.5
	}
	precision := max(0, min(8, 2-int(math.Floor(math.Log10(hi-lo)))))
	lh := lineHeight(p.text)
	bar, err := Colorbar(c.cmap, float32(lo), float32(hi)).Height(max(60, min(h-top-60, 320))).render(p.text)
	if err != nil {
		return err
	}
	labelW := textWidth(p.text, fmt.Sprint(m.Height-1))
	left := 30 + labelW + 6
	right := w - 30 - bar.Bounds().Dx()
	bottom := h - 40 - lh
	if right-left < m.Width || bottom-top < m.Height {
		return fmt.Errorf("display: chart %dx%d too small for a %dx%d map", w, h, m.Width, m.Height)
	}
	cell := math.Min(float64(right-left)/float64(m.Width), float64(bottom-top)/float64(m.Height))
	gw, gh := cell*float64(m.Width), cell*float64(m.Height)
	x0 := float64(left) + (float64(right-left)-gw)/2
	y0 := float64(top)
	var face font.Face
	if len(m.Values) <= 256 && m.Width <= 16 {
		face = p.text
	}
	for y := 0; y < m.Height; y++ {
		for x := 0; x < m.Width; x++ {
			r := image.Rect(int(math.Round(x0+float64(x)*cell)), int(math.Round(y0+float64(y)*cell)),
				int(math.Round(x0+float64(x+1)*cell)), int(math.Round(y0+float64(y+1)*cell)))
			v := float64(m.At(x, y))
			col := missColor
			if finite(v) {
				col = c.cmap.At((v - lo) / (hi - lo))
			}
			fill(p.img, r, col)
			if face != nil && finite(v) {
				s := fmt.Sprintf("%.*f", precision, v)
				if textWidth(face, s) < r.Dx()-2 {
					drawTextCentered(p.img, face, r, s, contrastOn(col))
				}
			}
		}
	}
	// Axis labels: every column and row index that fits.
	every := 1
	for every < m.Width && float64(every)*cell < float64(textWidth(p.text, fmt.Sprint(m.Width-1))+6) {
		every++
	}
	for x := 0; x < m.Width; x += every {
		s := fmt.Sprint(x)
		xc := int(math.Round(x0 + (float64(x)+0.5)*cell))
		drawText(p.img, p.text, xc-textWidth(p.text, s)/2, int(y0+gh)+6, s, axisColor)
	}
	everyY := max(1, int(math.Ceil(float64(lh+2)/cell)))
	for y := 0; y < m.Height; y += everyY {
		s := fmt.Sprint(y)
		yc := int(math.Round(y0 + (float64(y)+0.5)*cell))
		drawText(p.img, p.text, int(x0)-6-textWidth(p.text, s), yc-lh/2, s, axisColor)
	}
	if c.xName != "" {
		drawText(p.img, p.text, int(x0+gw)+6, int(y0+gh)+6, clean(c.xName), axisColor)
	}
	if c.yName != "" {
		drawText(p.img, p.text, int(x0)-6-textWidth(p.text, clean(c.yName)), int(y0)-lh-2, clean(c.yName), axisColor)
	}
	bx := w - 20 - bar.Bounds().Dx()
	by := int(y0 + (gh-float64(bar.Bounds().Dy()))/2)
	draw.Draw(p.img, bar.Bounds().Add(image.Pt(bx, max(top, by))), bar, image.Point{}, draw.Src)
	return nil
}

// contrastOn returns black or white, whichever reads better on c.
func contrastOn(c color.RGBA) color.Color {
	l := 0.2126*float64(c.R) + 0.7152*float64(c.G) + 0.0722*float64(c.B)
	return textColorOn(uint8(math.Round(l)))
}
