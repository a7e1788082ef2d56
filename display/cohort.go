package display

import (
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/draw"
	"strings"
	"time"

	"github.com/convlens/convlens/heatmap"
)

// A cohort report sums up the heat maps of a whole archive for readers who
// do not run code: the cohort's figures with their confidence intervals,
// tables (a per-class breakdown), distributions as charts, and galleries of
// cases, each linking to its page of a single-image report (Report). Like
// Report's, the page is one self-contained HTML file with no script:
// charts are inline SVG with the same chart beside as a PNG image (to copy
// into a document or a slide), and it prints on A4.

// CohortFigure is one line of a cohort report's table of figures.
type CohortFigure struct {
	// Name of the figure, Value formatted, Interval its confidence
	// interval formatted ("" for none), N what it is computed over.
	Name, Value, Interval, N string
	// Note says in plain language what it means.
	Note string
}

// CohortTable is a table of text cells.
type CohortTable struct {
	Caption string
	Header  []string
	Rows    [][]string
	// Note is printed under the table.
	Note string
}

// CohortChart is a bar chart of counts, such as a histogram.
type CohortChart struct {
	Title string
	// XLabel names the bars' axis; Labels name each bar.
	XLabel string
	Labels []string
	Counts []int
}

// CohortCase is one picture of a gallery.
type CohortCase struct {
	// Image is the image; Map, when valid, is drawn over it (values in
	// [0, 1], any size).
	Image image.Image
	Map   heatmap.Map
	// Caption is printed under it; Link is where it leads (its page in a
	// single-image report, e.g. "report-cases.html#page-3").
	Caption, Link string
}

// CohortGallery is a titled row of cases.
type CohortGallery struct {
	Title, Note string
	Cases       []CohortCase
}

// CohortInfo is what a cohort report's reader is told.
type CohortInfo struct {
	// Title heads the report.
	Title string
	// Facts are how it was made, as name and value ("Model", "lesions").
	Facts [][2]string
	// Note is a closing paragraph in plain language.
	Note string
	// Date of the report; the zero time means now.
	Date time.Time
}

// A CohortBuilder makes a cohort report; create one with Cohort.
type CohortBuilder struct {
	info      CohortInfo
	figures   []CohortFigure
	tables    []CohortTable
	charts    []CohortChart
	galleries []CohortGallery
	thumb     int
	cmap      Colormap
}

// DefaultCohortThumbSide is the side, in pixels, of a gallery's pictures.
const DefaultCohortThumbSide = 120

// Cohort starts a cohort report.
func Cohort(info CohortInfo) *CohortBuilder {
	return &CohortBuilder{info: info, thumb: DefaultCohortThumbSide, cmap: Jet}
}

// Figures adds figures to the table of figures.
func (b *CohortBuilder) Figures(f ...CohortFigure) *CohortBuilder {
	b.figures = append(b.figures, f...)
	return b
}

// Table adds a table.
func (b *CohortBuilder) Table(t CohortTable) *CohortBuilder { b.tables = append(b.tables, t); return b }

// Chart adds a chart.
func (b *CohortBuilder) Chart(c CohortChart) *CohortBuilder { b.charts = append(b.charts, c); return b }

// Gallery adds a gallery.
func (b *CohortBuilder) Gallery(g CohortGallery) *CohortBuilder {
	b.galleries = append(b.galleries, g)
	return b
}

// ThumbSide sets the side of the gallery pictures (default DefaultCohortThumbSide).
func (b *CohortBuilder) ThumbSide(px int) *CohortBuilder { b.thumb = px; return b }

// Save writes the report to path atomically.
func (b *CohortBuilder) Save(path string) error { return savePage(b, path) }

// Show displays the report in the running GoNB cell, or outside a
// notebook writes it to a new show-*.html file in CONVLENS_DISPLAY_DIR, or
// returns ErrNotNotebook.
func (b *CohortBuilder) Show() error { return showPage(b) }

type cohortView struct {
	Title, Date string
	CSS         template.CSS
	Facts       [][2]string
	Figures     []CohortFigure
	Tables      []CohortTable
	Charts      []chartView
	Galleries   []galleryView
	Note        string
}

type chartView struct {
	Title, XLabel  string
	Width, Height  int
	Bars           []barView
	YTicks         []tickView
	PNG            template.URL
	AxisY, AxisEnd int
}

type barView struct {
	X, Y, W, H, LabelX int
	Label, Count       string
}

type tickView struct {
	Y     int
	Label string
}

type galleryView struct {
	Title, Note string
	Cases       []caseView
}

type caseView struct {
	Image         template.URL
	Caption, Link string
}

// HTML returns the report as one self-contained HTML page.
func (b *CohortBuilder) HTML() (string, error) {
	if b.thumb < 16 {
		return "", fmt.Errorf("display: cohort thumbnail side %d: want at least 16 pixels", b.thumb)
	}
	info := b.info
	if info.Date.IsZero() {
		info.Date = time.Now()
	}
	view := cohortView{Title: orDefault(info.Title, "Cohort report"), Date: info.Date.Format("2006-01-02 15:04 MST"),
		CSS: template.CSS(reportCSS + cohortCSS), Facts: info.Facts, Figures: b.figures, Tables: b.tables, Note: info.Note}
	for i, c := range b.charts {
		cv, err := chartSVG(c)
		if err != nil {
			return "", fmt.Errorf("display: cohort chart %d: %w", i+1, err)
		}
		view.Charts = append(view.Charts, cv)
	}
	for gi, g := range b.galleries {
		gv := galleryView{Title: g.Title, Note: g.Note}
		for ci, c := range g.Cases {
			uri, err := b.thumbnail(c)
			if err != nil {
				return "", fmt.Errorf("display: gallery %d, case %d: %w", gi+1, ci+1, err)
			}
			gv.Cases = append(gv.Cases, caseView{Image: uri, Caption: c.Caption, Link: c.Link})
		}
		view.Galleries = append(view.Galleries, gv)
	}
	var out strings.Builder
	if err := cohortTmpl.Execute(&out, view); err != nil {
		return "", fmt.Errorf("display: cohort report: %w", err)
	}
	return out.String(), nil
}

// thumbnail draws a case's picture: the image, reduced to the thumbnail
// side, with its map over it when it has one.
func (b *CohortBuilder) thumbnail(c CohortCase) (template.URL, error) {
	if err := checkImage("Cohort: case image", c.Image); err != nil {
		return "", err
	}
	bd := c.Image.Bounds()
	side := max(bd.Dx(), bd.Dy())
	w, h := max(bd.Dx()*b.thumb/side, 1), max(bd.Dy()*b.thumb/side, 1)
	base, err := scaleImage(c.Image, w, h)
	if err != nil {
		return "", err
	}
	var img image.Image = base
	if c.Map.Validate() == nil {
		if img, err = Overlay(base, c.Map).Colormap(b.cmap).Alpha(0.5).Image(); err != nil {
			return "", err
		}
	}
	return dataURI(img)
}

// Chart geometry, in CSS pixels of the SVG (and pixels of its PNG).
const (
	chartW, chartH            = 330, 170
	chartLeft, chartBottom    = 40, 34
	chartTop, chartRightSpace = 8, 8
)

// chartSVG lays a bar chart out for the SVG and draws its PNG.
func chartSVG(c CohortChart) (chartView, error) {
	if len(c.Counts) == 0 || len(c.Labels) != len(c.Counts) {
		return chartView{}, fmt.Errorf("%d bars and %d labels", len(c.Counts), len(c.Labels))
	}
	hi := 0
	for _, n := range c.Counts {
		if n < 0 {
			return chartView{}, errors.New("a negative count")
		}
		hi = max(hi, n)
	}
	top := niceCeil(max(hi, 1))
	plotW, plotH := chartW-chartLeft-chartRightSpace, chartH-chartTop-chartBottom
	v := chartView{Title: c.Title, XLabel: c.XLabel, Width: chartW, Height: chartH, AxisY: chartTop + plotH, AxisEnd: chartLeft + plotW}
	slot := plotW / len(c.Counts)
	for i, n := range c.Counts {
		h := n * plotH / top
		x := chartLeft + i*slot
		v.Bars = append(v.Bars, barView{X: x + 1, Y: chartTop + plotH - h, W: max(slot-2, 1), H: h, LabelX: x + slot/2,
			Label: c.Labels[i], Count: fmt.Sprint(n)})
	}
	for _, t := range []int{0, top / 2, top} {
		v.YTicks = append(v.YTicks, tickView{Y: chartTop + plotH - t*plotH/top, Label: fmt.Sprint(t)})
	}
	img, err := chartPNG(v)
	if err != nil {
		return chartView{}, err
	}
	if v.PNG, err = dataURI(img); err != nil {
		return chartView{}, err
	}
	return v, nil
}

// niceCeil rounds n up to 2, 4, 6 or 8 times a power of ten, or ten times
// one: an even number, so that the middle tick is whole.
func niceCeil(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{2, 4, 6, 8, 10} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// chartPNG draws the laid-out chart as a picture, twice the SVG's size.
func chartPNG(v chartView) (image.Image, error) {
	const s = 2
	img := image.NewRGBA(image.Rect(0, 0, v.Width*s, v.Height*s))
	draw.Draw(img, img.Bounds(), image.NewUniform(paperColor), image.Point{}, draw.Src)
	bar := image.NewUniform(color.RGBA{0x77, 0x77, 0x77, 0xff})
	axis := image.NewUniform(color.RGBA{0x33, 0x33, 0x33, 0xff})
	for _, b := range v.Bars {
		draw.Draw(img, image.Rect(b.X*s, b.Y*s, (b.X+b.W)*s, (b.Y+b.H)*s), bar, image.Point{}, draw.Src)
	}
	draw.Draw(img, image.Rect(chartLeft*s, v.AxisY*s, v.AxisEnd*s, v.AxisY*s+s), axis, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(chartLeft*s-s, chartTop*s, chartLeft*s, v.AxisY*s+s), axis, image.Point{}, draw.Src)
	face, err := newFace(10 * s)
	if err != nil {
		return nil, err
	}
	lh := lineHeight(face)
	for _, t := range v.YTicks {
		drawText(img, face, chartLeft*s-4*s-textWidth(face, t.Label), t.Y*s-lh/2, t.Label, inkColor)
	}
	for _, b := range v.Bars {
		drawText(img, face, b.LabelX*s-textWidth(face, b.Label)/2, v.AxisY*s+3*s, b.Label, inkColor)
	}
	drawText(img, face, (chartLeft+v.AxisEnd)*s/2-textWidth(face, v.XLabel)/2, v.AxisY*s+16*s, v.XLabel, inkColor)
	return img, nil
}

const cohortTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
{{.CSS}}</style>
</head>
<body>
<section class="cohort">
<header><span class="what">convlens: cohort report</span><span class="where">{{.Date}}</span></header>
<h1>{{.Title}}</h1>
<table class="facts cohort-facts">
<caption>How it was made</caption>
{{range .Facts}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end -}}
</table>
{{if .Figures -}}
<h2>Figures</h2>
<table class="figures">
<tr><th>figure</th><th class="num">value</th><th class="num">95% interval</th><th class="num">over</th><th>what it means</th></tr>
{{range .Figures}}<tr><td>{{.Name}}</td><td class="num"><b>{{.Value}}</b></td><td class="num">{{.Interval}}</td><td class="num">{{.N}}</td><td class="small">{{.Note}}</td></tr>
{{end -}}
</table>
{{end -}}
{{range .Tables -}}
<h2>{{.Caption}}</h2>
<table class="breakdown">
<tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end -}}
</table>
{{with .Note}}<p class="small">{{.}}</p>{{end}}
{{end -}}
{{if .Charts -}}
<h2>Distributions</h2>
<p class="small">Each chart is drawn twice: as a vector chart (hover a bar for its count) and, beside it, as a picture to copy into a document.</p>
{{range .Charts -}}
<div class="chart">
<h3>{{.Title}}</h3>
<div class="chart-pair">
<svg class="chart-svg" viewBox="0 0 {{.Width}} {{.Height}}" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="{{.Title}}">
<line x1="40" y1="{{.AxisY}}" x2="{{.AxisEnd}}" y2="{{.AxisY}}" stroke="#333"/>
<line x1="40" y1="8" x2="40" y2="{{.AxisY}}" stroke="#333"/>
{{range .YTicks}}<text x="36" y="{{.Y}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>
{{end -}}
{{$y := .AxisY}}{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#777"><title>{{.Label}}: {{.Count}}</title></rect><text x="{{.LabelX}}" y="{{$y}}" dy="12" text-anchor="middle">{{.Label}}</text>
{{end -}}
<text x="{{half .AxisEnd}}" y="{{.Height}}" dy="-4" text-anchor="middle">{{.XLabel}}</text>
</svg>
<img class="chart-png" {{srcAttr .PNG}} alt="{{.Title}} (picture)">
</div>
</div>
{{end -}}
{{end -}}
</section>
{{if .Galleries -}}
<section class="galleries">
{{range .Galleries -}}
<div class="gallery">
<h2>{{.Title}}</h2>
{{with .Note}}<p class="small">{{.}}</p>{{end}}
{{if .Cases -}}
<div class="cases">
{{range .Cases}}<figure class="case"><a href="{{.Link}}"><img {{srcAttr .Image}} alt="{{.Caption}}"></a><figcaption><a href="{{.Link}}">{{.Caption}}</a></figcaption></figure>
{{end -}}
</div>
{{else -}}
<p class="small">None.</p>
{{end -}}
</div>
{{end -}}
</section>
{{end -}}
{{with .Note}}<section class="cohort-note"><div class="note"><p>{{.}}</p></div></section>{{end}}
</body>
</html>
`

var cohortTmpl = template.Must(template.New("cohort").Funcs(template.FuncMap{
	"srcAttr": srcAttr,
	"half":    func(v int) int { return (v + chartLeft) / 2 },
}).Parse(cohortTemplate))

// cohortCSS adds the cohort report's layout to reportCSS: flowing A4 pages
// instead of one fixed box per image.
const cohortCSS = `
.cohort, .galleries, .cohort-note { width: 186mm; }
@media screen { .cohort, .galleries, .cohort-note { background: #fff; padding: 12mm; margin: 8mm auto; box-shadow: 0 1px 4px rgba(0,0,0,.3); } }
h2 { font-size: 12pt; margin: 5mm 0 2mm 0; break-after: avoid; page-break-after: avoid; }
h3 { font-size: 10pt; margin: 2mm 0 1mm 0; }
table.figures, table.breakdown { width: 100%; break-inside: avoid; page-break-inside: avoid; }
table.cohort-facts { width: 186mm; margin-top: 2mm; }
table.cohort-facts th { width: 30mm; }
.chart { break-inside: avoid; page-break-inside: avoid; margin-bottom: 3mm; }
.chart-pair { display: flex; gap: 4mm; align-items: flex-start; }
.chart-svg { width: 90mm; height: auto; font-size: 9px; font-family: "DejaVu Sans", Arial, sans-serif; }
.chart-png { width: 90mm; height: auto; border: 0.2mm solid #ccc; }
.galleries { break-before: page; page-break-before: always; }
.gallery { break-inside: avoid; page-break-inside: avoid; }
.cases { display: flex; flex-wrap: wrap; gap: 3mm; }
figure.case { width: 28mm; height: auto; margin: 0; display: block; break-inside: avoid; page-break-inside: avoid; }
figure.case img { width: 28mm; height: auto; max-height: none; }
figure.case figcaption { font-size: 7pt; text-align: left; word-break: break-all; }
a { color: #1a1a1a; }
`
