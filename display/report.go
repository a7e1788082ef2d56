package display

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"strings"
	"time"

	"github.com/convlens/convlens/heatmap"
)

// A report is the artefact a reader who does not run code receives: one
// self-contained HTML file, one printed A4 page per image, with the image,
// the heat map over it, the prediction and what produced it.

// ReportClass is one line of a report's table of classes.
type ReportClass struct {
	// Index is the class's logit index.
	Index int
	// Label is the class's name, or "" when the model has none.
	Label string
	// Probability is the softmax probability, in [0, 1].
	Probability float64
}

// Name is the label and index, e.g. "melanoma (3)", or "class 3" without a label.
func (c ReportClass) Name() string {
	if c.Label != "" {
		return fmt.Sprintf("%s (%d)", c.Label, c.Index)
	}
	return fmt.Sprintf("class %d", c.Index)
}

// ReportPage is one image of a report: one printed page.
type ReportPage struct {
	// Title names the image, e.g. its file name.
	Title string
	// Image is the image as given (it is shown reduced to at most
	// DefaultReportImageSide pixels on its longer side).
	Image image.Image
	// Map is the heat map, values in [0, 1] (as Grad-CAM's normalised
	// maps are), any size: it is resized to the image.
	Map heatmap.Map
	// Top are the most probable classes, best first (a report shows up to
	// five); Top[0] is the prediction.
	Top []ReportClass
	// Explained is the class the heat map explains. Its zero value (and a
	// nil pointer) means the prediction, Top[0].
	Explained *ReportClass
	// BlankNote, when not empty, says that the map is blank (zero
	// everywhere after the ReLU) and what to try; the page shows it in
	// place of the overlay and its colour scale.
	BlankNote string
}

// ReportInfo is what every page of a report states about how it was made.
type ReportInfo struct {
	// Model names the model.
	Model string
	// Checksum identifies the exact weights, e.g. the hex SHA-256 of the
	// model file; ChecksumOf says what was hashed ("SHA-256 of the ONNX
	// file"). When Checksum is empty, ChecksumOf says why there is none.
	Checksum, ChecksumOf string
	// Method is the explanation method, e.g. "gradcam".
	Method string
	// Layers the maps were computed at; LayerNote says how they were
	// chosen when that matters, e.g. "chosen automatically: the last
	// layer with spatial axes".
	Layers    []string
	LayerNote string
	// Date of the report; the zero time means now.
	Date time.Time
	// Software names what made the report; "convlens" when empty.
	Software string
}

// DefaultReportImageSide is the longer side, in pixels, images are reduced
// to in a report: sharp on paper at the printed size, and a file of a
// few hundred kilobytes per page.
const DefaultReportImageSide = 720

// A ReportBuilder makes a report. Create one with Report.
type ReportBuilder struct {
	info  ReportInfo
	pages []ReportPage
	cmap  Colormap
	alpha float64
	side  int
}

// Report starts building a report of the given pages, one printed A4 page
// each. The HTML it makes is one self-contained file: images are inlined
// as data URIs and there is no script, so it opens and prints the same
// without a network. Each page shows the image, the heat map blended over
// it (Overlay, Jet, alpha 0.5 by default) with its colour scale, the
// prediction with its probability, the top five classes, the method and
// layer, the model and its weights' checksum, the date, and a short note
// in plain language on what the heat map shows and what it does not.
func Report(info ReportInfo, pages ...ReportPage) *ReportBuilder {
	return &ReportBuilder{info: info, pages: pages, cmap: Jet, alpha: 0.5, side: DefaultReportImageSide}
}

// Colormap sets the heat map's colormap (default Jet).
func (b *ReportBuilder) Colormap(c Colormap) *ReportBuilder { b.cmap = c; return b }

// Alpha sets the heat map's weight in the overlay (default 0.5).
func (b *ReportBuilder) Alpha(a float64) *ReportBuilder { b.alpha = a; return b }

// ImageSide sets the longer side images are reduced to (default
// DefaultReportImageSide); smaller images are kept as they are.
func (b *ReportBuilder) ImageSide(px int) *ReportBuilder { b.side = px; return b }

// Save writes the report to path atomically (see SavePNG): on error no
// file, or the previous one, is left.
func (b *ReportBuilder) Save(path string) error { return savePage(b, path) }

// IFrame returns the report inside an <iframe srcdoc>, for a notebook cell:
// the report's print styles then do not touch the notebook's.
func (b *ReportBuilder) IFrame() (string, error) { return iframePage(b) }

// Show displays the report in the running GoNB notebook cell (in an
// iframe, see IFrame). Outside a notebook it writes the whole page to a new
// show-*.html file in CONVLENS_DISPLAY_DIR, or returns ErrNotNotebook.
func (b *ReportBuilder) Show() error { return showPage(b) }

// page is a builder of a self-contained HTML page: a report, a cohort.
type page interface{ HTML() (string, error) }

// savePage writes p's page to path atomically.
func savePage(p page, path string) error {
	html, err := p.HTML()
	if err != nil {
		return err
	}
	return SaveHTML(path, html)
}

// iframePage returns p's page inside an <iframe srcdoc>, so that its print
// styles do not touch the notebook's.
func iframePage(p page) (string, error) {
	html, err := p.HTML()
	if err != nil {
		return "", err
	}
	var out strings.Builder
	if err := iframeTmpl.Execute(&out, html); err != nil {
		return "", fmt.Errorf("display: page: %w", err)
	}
	return out.String(), nil
}

// showPage shows p's page in the running GoNB cell, or outside a notebook
// writes it to a new show-*.html file in CONVLENS_DISPLAY_DIR.
func showPage(p page) error {
	if isNotebook() {
		frag, err := iframePage(p)
		if err != nil {
			return err
		}
		return sendHTML(frag)
	}
	html, err := p.HTML()
	if err != nil {
		return err
	}
	return writeShowFile(".html", []byte(html))
}

// reportTemplate is the report page. It is rendered with html/template, so
// every string from the caller (titles, labels, model and layer names) is
// escaped for where it appears; the only values trusted as they are are
// the style sheet (reportCSS, a constant) and the images' data URIs, which
// dataURI builds and srcAttr checks.
const reportTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
{{.CSS}}</style>
</head>
<body>
{{range .Pages -}}
<section class="page" id="page-{{.Number}}">
<header><span class="what">{{.Software}}: heat-map report</span><span class="where">image {{.Number}} of {{.Of}} &middot; {{.Date}}</span></header>
<h1>{{.Title}}</h1>
<p class="prediction">Predicted: <b>{{.Predicted.Name}}</b>, probability <b>{{percent .Predicted.Probability}}</b></p>
{{if .ExplainsOther -}}
<p class="explained">The heat map shows the evidence for <b>{{.Explained.Name}}</b> (probability {{percent .Explained.Probability}}), not for the prediction.</p>
{{end -}}
{{if .BlankNote -}}
<p class="warning">{{.BlankNote}}</p>
{{else if .EmptyMap -}}
<p class="warning">The heat map is empty (uniform): {{.EmptyMapMethod}} found no region with more evidence than another at this layer, so it shows nothing about where the evidence was.</p>
{{end -}}
<div class="figures">
<figure><img class="image{{if .Pixels}} pixels{{end}}" {{srcAttr .Image}} alt="the image"><figcaption>The image</figcaption></figure>
{{if not .BlankNote -}}
<figure><img class="overlay{{if .Pixels}} pixels{{end}}" {{srcAttr .Overlay}} alt="heat map over the image"><figcaption>Heat map over the image: evidence for {{.Explained.Name}}</figcaption></figure>
<div class="legend"><span>strongest</span><img {{srcAttr .Legend}} alt="colour scale"><span>none</span></div>
{{end -}}
</div>
<div class="columns">
<table class="top">
<caption>Most probable classes</caption>
<tr><th>#</th><th>class</th><th class="num">probability</th><th></th></tr>
{{range $k, $c := .Top -}}
<tr{{if eq $k 0}} class="predicted"{{end}}><td>{{inc $k}}</td><td>{{$c.Name}}</td><td class="num">{{percent $c.Probability}}</td><td class="bar"><div style="width:{{percent $c.Probability}}"></div></td></tr>
{{end -}}
</table>
<table class="facts">
<caption>How it was made</caption>
<tr><th>Method</th><td>{{.Method}}</td></tr>
<tr><th>Layer</th><td><code>{{.Layers}}</code>{{with .LayerNote}}<br><span class="small">{{.}}</span>{{end}}</td></tr>
<tr><th>Model</th><td>{{.Model}}</td></tr>
{{if .Checksum -}}
<tr><th>Weights</th><td><code class="sum">{{.Checksum}}</code>{{with .ChecksumOf}}<br><span class="small">{{.}}</span>{{end}}</td></tr>
{{else -}}
<tr><th>Weights</th><td><span class="small">{{.ChecksumOf}}</span></td></tr>
{{end -}}
<tr><th>Date</th><td>{{.LongDate}}</td></tr>
</table>
</div>
<div class="note">{{template "note" .Method}}</div>
</section>
{{end -}}
</body>
</html>
`

// reportNote is the plain-language note every page carries; its data is
// the method's name.
const reportNote = `{{define "note"}}<p><b>What the coloured overlay shows.</b> The regions that most raised the model's score
for the class named above, as computed by {{.}}: red marks the strongest evidence, blue none. It is scaled
on each image so that its strongest region is always red, even when the evidence is weak, and it is coarse:
it is computed on a grid smaller than the image and smoothed.</p>
<p><b>What it does not show.</b> It does not show that the prediction is right, nor that the model looked
at what a clinician would look at: it shows where the evidence was, not whether it is sound. A highlighted
region can be an artefact (a ruler, a marker, a label, the image border) that the model learned to rely on.
The probability is the model's own estimate and is not calibrated against outcomes. This report supports
a review of the model's prediction; it is not a diagnosis.</p>{{end}}`

// reportTmpl is reportTemplate and reportNote parsed; they are constants,
// so a parse error is a bug and panics at init.
var reportTmpl = template.Must(template.Must(template.New("report").Funcs(template.FuncMap{
	"percent": func(p float64) string { return fmt.Sprintf("%.1f%%", 100*p) },
	"inc":     func(k int) int { return k + 1 },
	"srcAttr": srcAttr,
}).Parse(reportTemplate)).Parse(reportNote))

// iframeTmpl wraps a report page for a notebook cell (IFrame).
var iframeTmpl = template.Must(template.New("iframe").Parse(
	`<iframe srcdoc="{{.}}" title="convlens report" width="860" height="1100" style="border:1px solid #ccc;max-width:100%"></iframe>`))

// reportView is what reportTemplate renders.
type reportView struct {
	Title string
	CSS   template.CSS
	Pages []pageView
}

// pageView is one page of a reportView. Its strings are plain text, which
// the template escapes; its images are data URIs made by dataURI.
type pageView struct {
	Number, Of                       int
	Software, Date, LongDate, Title  string
	Predicted, Explained             ReportClass
	ExplainsOther                    bool
	EmptyMap                         bool
	BlankNote                        string
	EmptyMapMethod                   string
	Pixels                           bool
	Image, Overlay, Legend           template.URL
	Top                              []ReportClass
	Method, Layers, LayerNote, Model string
	Checksum, ChecksumOf             string
}

// srcAttr returns the attribute src="uri" for a data URI made by dataURI.
// html/template would write the URI's '+' characters as "&#43;" inside an
// attribute; the attribute is written whole instead, after checking that
// the URI holds nothing but the base64 alphabet, so that it needs no
// escaping.
func srcAttr(uri template.URL) (template.HTMLAttr, error) {
	data, ok := strings.CutPrefix(string(uri), dataURIPrefix)
	if !ok || strings.TrimLeft(data, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
		return "", errors.New("display: not a base64 PNG data URI")
	}
	return template.HTMLAttr(`src="` + string(uri) + `"`), nil
}

// HTML returns the report as one self-contained HTML page.
func (b *ReportBuilder) HTML() (string, error) {
	if len(b.pages) == 0 {
		return "", errors.New("display: a report needs at least one page (image)")
	}
	if b.side < 16 {
		return "", fmt.Errorf("display: report image side %d: want at least 16 pixels", b.side)
	}
	info := b.info
	if info.Date.IsZero() {
		info.Date = time.Now()
	}
	if info.Software == "" {
		info.Software = "convlens"
	}
	legend, err := b.legend()
	if err != nil {
		return "", err
	}
	view := reportView{
		Title: reportTitle(info, len(b.pages)),
		CSS:   template.CSS(reportCSS),
		Pages: make([]pageView, len(b.pages)),
	}
	for i, p := range b.pages {
		if view.Pages[i], err = b.page(info, legend, i, p); err != nil {
			return "", fmt.Errorf("display: report page %d: %w", i+1, err)
		}
	}
	var out strings.Builder
	if err := reportTmpl.Execute(&out, view); err != nil {
		return "", fmt.Errorf("display: report: %w", err)
	}
	return out.String(), nil
}

func reportTitle(info ReportInfo, n int) string {
	s := "Heat-map report"
	if info.Model != "" {
		s += ": " + info.Model
	}
	if n > 1 {
		s += fmt.Sprintf(", %d images", n)
	}
	return s
}

// legend renders the colour scale once, as an inline image shared by all pages.
func (b *ReportBuilder) legend() (template.URL, error) {
	// A 1x64 map from 1 (top) to 0 (bottom), stretched by the browser.
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = 1 - float32(i)/float32(len(vals)-1)
	}
	img, err := Heatmap(heatmap.Map{Width: 1, Height: len(vals), Values: vals}).Colormap(b.cmap).Image()
	if err != nil {
		return "", err
	}
	return dataURI(img)
}

// page checks page i and renders its pictures.
func (b *ReportBuilder) page(info ReportInfo, legend template.URL, i int, p ReportPage) (pageView, error) {
	if err := checkImage("Report: page image", p.Image); err != nil {
		return pageView{}, err
	}
	if err := p.Map.Validate(); err != nil {
		return pageView{}, err
	}
	if len(p.Top) == 0 {
		return pageView{}, errors.New("no classes: Top needs at least the predicted class")
	}
	for _, c := range p.Top {
		if !(c.Probability >= 0 && c.Probability <= 1) {
			return pageView{}, fmt.Errorf("%s has probability %v, outside [0, 1]", c.Name(), c.Probability)
		}
	}
	base := p.Image
	if bd := base.Bounds(); max(bd.Dx(), bd.Dy()) > b.side {
		w, h := bd.Dx()*b.side/max(bd.Dx(), bd.Dy()), bd.Dy()*b.side/max(bd.Dx(), bd.Dy())
		scaled, err := scaleImage(base, max(w, 1), max(h, 1))
		if err != nil {
			return pageView{}, err
		}
		base = scaled
	}
	overlay, err := Overlay(base, p.Map).Colormap(b.cmap).Alpha(b.alpha).Image()
	if err != nil {
		return pageView{}, err
	}
	baseURI, err := dataURI(base)
	if err != nil {
		return pageView{}, err
	}
	overlayURI, err := dataURI(overlay)
	if err != nil {
		return pageView{}, err
	}
	pred := p.Top[0]
	explained := pred
	if p.Explained != nil && *p.Explained != (ReportClass{}) {
		explained = *p.Explained
	}
	title := p.Title
	if title == "" {
		title = fmt.Sprintf("image %d", i+1)
	}
	lo, hi := p.Map.MinMax()
	layers := strings.Join(info.Layers, ", ")
	if layers == "" {
		layers = "none (the method works on the input)"
	}
	checksumOf := info.ChecksumOf
	if info.Checksum == "" && checksumOf == "" {
		checksumOf = "no checksum given"
	}
	return pageView{
		Number:         i + 1,
		Of:             len(b.pages),
		Software:       info.Software,
		Date:           info.Date.Format("2006-01-02 15:04 MST"),
		LongDate:       info.Date.Format("2006-01-02 15:04:05 MST"),
		Title:          title,
		Predicted:      pred,
		Explained:      explained,
		ExplainsOther:  explained != pred,
		EmptyMap:       !(hi > lo),
		BlankNote:      p.BlankNote,
		EmptyMapMethod: orDefault(info.Method, "the method"),
		// Images are drawn to fill their box; a small one (a 28x28 digit,
		// say) is enlarged with visible pixels rather than blurred.
		Pixels:     max(base.Bounds().Dx(), base.Bounds().Dy()) < 200,
		Image:      baseURI,
		Overlay:    overlayURI,
		Legend:     legend,
		Top:        p.Top[:min(5, len(p.Top))],
		Method:     orDefault(info.Method, "not stated"),
		Layers:     layers,
		LayerNote:  info.LayerNote,
		Model:      orDefault(info.Model, "not stated"),
		Checksum:   info.Checksum,
		ChecksumOf: checksumOf,
	}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dataURIPrefix starts every data URI that dataURI makes.
const dataURIPrefix = "data:image/png;base64,"

// dataURI encodes img as a PNG data URI.
func dataURI(img image.Image) (template.URL, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("display: encoding PNG: %w", err)
	}
	return template.URL(dataURIPrefix + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// reportCSS lays pages out in black, white and grey, so that the only
// colours on a page are the heat map's and its scale's, on A4 (210 x 297 mm,
// 12 mm margins: 186 x 273 mm of content). Each page is a fixed-size box
// that ends with a page break, so a page can neither spill onto a second
// sheet nor share one.
const reportCSS = `@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 9.5pt; line-height: 1.35; color: #1a1a1a; background: #fff; }
.page { width: 186mm; height: 272mm; overflow: hidden; break-after: page; page-break-after: always; break-inside: avoid; page-break-inside: avoid; }
.page:last-child { break-after: auto; page-break-after: auto; }
@media screen {
  body { background: #e8e8e8; }
  .page { background: #fff; box-sizing: content-box; padding: 12mm; margin: 8mm auto; box-shadow: 0 1px 4px rgba(0,0,0,.3); }
}
header { display: flex; justify-content: space-between; font-size: 8.5pt; color: #555; border-bottom: 0.3mm solid #999; padding-bottom: 1.5mm; }
h1 { font-size: 15pt; margin: 3mm 0 1mm 0; word-break: break-all; }
p { margin: 1mm 0; }
.prediction { font-size: 12pt; }
.explained, .warning { border-left: 1.2mm solid #555; padding-left: 2mm; }
.figures { display: flex; align-items: center; gap: 3mm; margin: 3mm 0; height: 92mm; }
figure { margin: 0; width: 83mm; height: 92mm; display: flex; flex-direction: column; align-items: center; justify-content: center; }
figure img { width: 83mm; height: auto; max-height: 85mm; object-fit: contain; }
figure img.pixels { image-rendering: pixelated; }
figcaption { font-size: 8.5pt; color: #444; margin-top: 1mm; text-align: center; }
.legend { width: 14mm; height: 70mm; display: flex; flex-direction: column; align-items: center; font-size: 7.5pt; color: #444; }
.legend img { width: 5mm; height: 60mm; flex: none; object-fit: fill; margin: 1mm 0; border: 0.2mm solid #999; }
.columns { display: flex; gap: 6mm; align-items: flex-start; }
table { border-collapse: collapse; }
caption { text-align: left; font-weight: bold; padding-bottom: 1mm; }
th, td { text-align: left; vertical-align: top; padding: 0.8mm 1.5mm; border-bottom: 0.2mm solid #ccc; }
table.top { width: 80mm; }
table.facts { width: 100mm; }
table.facts th { width: 18mm; }
td.num { text-align: right; white-space: nowrap; }
th.num { text-align: right; }
td.bar { width: 22mm; }
td.bar div { height: 3mm; background: #777; }
tr.predicted td { font-weight: bold; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; word-break: break-all; }
code.sum { font-size: 7pt; }
.small { font-size: 7.5pt; color: #555; }
.note { margin-top: 4mm; border: 0.3mm solid #999; padding: 2mm 3mm; font-size: 8.8pt; }
.note p { margin: 1mm 0; }
`
