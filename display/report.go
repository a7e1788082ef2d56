package display

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
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
func (b *ReportBuilder) Save(path string) error {
	page, err := b.HTML()
	if err != nil {
		return err
	}
	return SaveHTML(path, page)
}

// IFrame returns the report inside an <iframe srcdoc>, for a notebook cell:
// the report's print styles then do not touch the notebook's.
func (b *ReportBuilder) IFrame() (string, error) {
	page, err := b.HTML()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`<iframe srcdoc="%s" title="convlens report" width="860" height="1100" style="border:1px solid #ccc;max-width:100%%"></iframe>`,
		html.EscapeString(page)), nil
}

// Show displays the report in the running GoNB notebook cell (in an
// iframe, see IFrame). Outside a notebook it writes the whole page to a new
// show-*.html file in CONVLENS_DISPLAY_DIR, or returns ErrNotNotebook.
func (b *ReportBuilder) Show() error {
	if isNotebook() {
		frag, err := b.IFrame()
		if err != nil {
			return err
		}
		return sendHTML(frag)
	}
	page, err := b.HTML()
	if err != nil {
		return err
	}
	return writeShowFile(".html", []byte(page))
}

// reportNote is the plain-language note every page carries. %s is the method.
const reportNote = `<p><b>What the coloured overlay shows.</b> The regions that most raised the model's score
for the class named above, as computed by %s: red marks the strongest evidence, blue none. It is scaled
on each image so that its strongest region is always red, even when the evidence is weak, and it is coarse:
it is computed on a grid smaller than the image and smoothed.</p>
<p><b>What it does not show.</b> It does not show that the prediction is right, nor that the model looked
at what a clinician would look at: it shows where the evidence was, not whether it is sound. A highlighted
region can be an artefact (a ruler, a marker, a label, the image border) that the model learned to rely on.
The probability is the model's own estimate and is not calibrated against outcomes. This report supports
a review of the model's prediction; it is not a diagnosis.</p>`

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
	var out strings.Builder
	out.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	fmt.Fprintf(&out, "<title>%s</title>\n", html.EscapeString(reportTitle(info, len(b.pages))))
	out.WriteString("<style>\n" + reportCSS + "</style>\n</head>\n<body>\n")
	for i, p := range b.pages {
		if err := b.writePage(&out, info, legend, i, p); err != nil {
			return "", fmt.Errorf("display: report page %d: %w", i+1, err)
		}
	}
	out.WriteString("</body>\n</html>\n")
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
func (b *ReportBuilder) legend() (string, error) {
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

func (b *ReportBuilder) writePage(out *strings.Builder, info ReportInfo, legend string, i int, p ReportPage) error {
	if p.Image == nil {
		return errNilImage
	}
	if err := p.Map.Validate(); err != nil {
		return err
	}
	if len(p.Top) == 0 {
		return errors.New("no classes: Top needs at least the predicted class")
	}
	for _, c := range p.Top {
		if !(c.Probability >= 0 && c.Probability <= 1) {
			return fmt.Errorf("%s has probability %v, outside [0, 1]", c.Name(), c.Probability)
		}
	}
	base := p.Image
	if bd := base.Bounds(); max(bd.Dx(), bd.Dy()) > b.side {
		w, h := bd.Dx()*b.side/max(bd.Dx(), bd.Dy()), bd.Dy()*b.side/max(bd.Dx(), bd.Dy())
		scaled, err := scaleImage(base, max(w, 1), max(h, 1))
		if err != nil {
			return err
		}
		base = scaled
	}
	overlay, err := Overlay(base, p.Map).Colormap(b.cmap).Alpha(b.alpha).Image()
	if err != nil {
		return err
	}
	baseURI, err := dataURI(base)
	if err != nil {
		return err
	}
	overlayURI, err := dataURI(overlay)
	if err != nil {
		return err
	}
	pred := p.Top[0]
	explained := pred
	if p.Explained != nil && *p.Explained != (ReportClass{}) {
		explained = *p.Explained
	}
	esc := html.EscapeString
	title := p.Title
	if title == "" {
		title = fmt.Sprintf("image %d", i+1)
	}

	fmt.Fprintf(out, "<section class=\"page\" id=\"page-%d\">\n", i+1)
	fmt.Fprintf(out, "<header><span class=\"what\">%s: heat-map report</span><span class=\"where\">image %d of %d &middot; %s</span></header>\n",
		esc(info.Software), i+1, len(b.pages), esc(info.Date.Format("2006-01-02 15:04 MST")))
	fmt.Fprintf(out, "<h1>%s</h1>\n", esc(title))
	fmt.Fprintf(out, "<p class=\"prediction\">Predicted: <b>%s</b>, probability <b>%.1f%%</b></p>\n", esc(pred.Name()), 100*pred.Probability)
	if explained != pred {
		fmt.Fprintf(out, "<p class=\"explained\">The heat map shows the evidence for <b>%s</b> (probability %.1f%%), not for the prediction.</p>\n",
			esc(explained.Name()), 100*explained.Probability)
	}
	if lo, hi := p.Map.MinMax(); !(hi > lo) {
		fmt.Fprintf(out, "<p class=\"warning\">The heat map is empty (uniform): %s found no region with more evidence than another at this layer, so it shows nothing about where the evidence was.</p>\n",
			esc(orDefault(info.Method, "the method")))
	}
	out.WriteString("<div class=\"figures\">\n")
	// Images are drawn to fill their box; a small one (a 28x28 digit, say)
	// is enlarged with visible pixels rather than blurred.
	pixels := ""
	if bd := base.Bounds(); max(bd.Dx(), bd.Dy()) < 200 {
		pixels = " pixels"
	}
	fmt.Fprintf(out, "<figure><img class=\"image%s\" src=\"%s\" alt=\"the image\"><figcaption>The image</figcaption></figure>\n", pixels, baseURI)
	fmt.Fprintf(out, "<figure><img class=\"overlay%s\" src=\"%s\" alt=\"heat map over the image\"><figcaption>Heat map over the image: evidence for %s</figcaption></figure>\n",
		pixels, overlayURI, esc(explained.Name()))
	fmt.Fprintf(out, "<div class=\"legend\"><span>strongest</span><img src=\"%s\" alt=\"colour scale\"><span>none</span></div>\n", legend)
	out.WriteString("</div>\n")

	out.WriteString("<div class=\"columns\">\n<table class=\"top\">\n<caption>Most probable classes</caption>\n")
	out.WriteString("<tr><th>#</th><th>class</th><th class=\"num\">probability</th><th></th></tr>\n")
	for k, c := range p.Top[:min(5, len(p.Top))] {
		cls := ""
		if k == 0 {
			cls = " class=\"predicted\""
		}
		fmt.Fprintf(out, "<tr%s><td>%d</td><td>%s</td><td class=\"num\">%.1f%%</td><td class=\"bar\"><div style=\"width:%.1f%%\"></div></td></tr>\n",
			cls, k+1, esc(c.Name()), 100*c.Probability, 100*c.Probability)
	}
	out.WriteString("</table>\n<table class=\"facts\">\n<caption>How it was made</caption>\n")
	method := info.Method
	if method == "" {
		method = "not stated"
	}
	fmt.Fprintf(out, "<tr><th>Method</th><td>%s</td></tr>\n", esc(method))
	layers := strings.Join(info.Layers, ", ")
	if layers == "" {
		layers = "none (the method works on the input)"
	}
	fmt.Fprintf(out, "<tr><th>Layer</th><td><code>%s</code>", esc(layers))
	if info.LayerNote != "" {
		fmt.Fprintf(out, "<br><span class=\"small\">%s</span>", esc(info.LayerNote))
	}
	out.WriteString("</td></tr>\n")
	model := info.Model
	if model == "" {
		model = "not stated"
	}
	fmt.Fprintf(out, "<tr><th>Model</th><td>%s</td></tr>\n", esc(model))
	if info.Checksum != "" {
		fmt.Fprintf(out, "<tr><th>Weights</th><td><code class=\"sum\">%s</code>", esc(info.Checksum))
		if info.ChecksumOf != "" {
			fmt.Fprintf(out, "<br><span class=\"small\">%s</span>", esc(info.ChecksumOf))
		}
		out.WriteString("</td></tr>\n")
	} else {
		note := info.ChecksumOf
		if note == "" {
			note = "no checksum given"
		}
		fmt.Fprintf(out, "<tr><th>Weights</th><td><span class=\"small\">%s</span></td></tr>\n", esc(note))
	}
	fmt.Fprintf(out, "<tr><th>Date</th><td>%s</td></tr>\n", esc(info.Date.Format("2006-01-02 15:04:05 MST")))
	out.WriteString("</table>\n</div>\n")
	fmt.Fprintf(out, "<div class=\"note\">%s</div>\n", fmt.Sprintf(reportNote, esc(method)))
	out.WriteString("</section>\n")
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dataURI encodes img as a PNG data URI.
func dataURI(img image.Image) (string, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("display: encoding PNG: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
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
