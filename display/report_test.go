package display

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"html/template"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/testutil"
)

// greyPhoto is a 120x80 grey gradient: an image with content but no
// colour, so that in a printed report every saturated pixel comes from the
// heat map (and its colour scale).
func greyPhoto() image.Image {
	img := image.NewGray(image.Rect(0, 0, 120, 80))
	for y := range 80 {
		for x := range 120 {
			img.Pix[y*120+x] = uint8(60 + x + y/2)
		}
	}
	return img
}

// blobMap is an 8x8 map with one bright blob centred at (cx, cy), in [0, 1].
func blobMap(cx, cy float64) heatmap.Map {
	v := make([]float32, 64)
	for y := range 8 {
		for x := range 8 {
			d := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
			v[y*8+x] = float32(math.Exp(-d / 4))
		}
	}
	return heatmap.Map{Width: 8, Height: 8, Values: v}
}

var reportDate = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func testReport(pages int, m func(i int) heatmap.Map) *ReportBuilder {
	info := ReportInfo{
		Model: "lesions-v2", Checksum: strings.Repeat("ab12", 16), ChecksumOf: "SHA-256 of the model file",
		Method: "gradcam", Layers: []string{"/layer4/relu"}, LayerNote: "chosen automatically",
		Date: reportDate,
	}
	var ps []ReportPage
	for i := range pages {
		ps = append(ps, ReportPage{
			Title: fmt.Sprintf("case-%d.png", i+1), Image: greyPhoto(), Map: m(i),
			Top: []ReportClass{
				{Index: 3, Label: "melanoma", Probability: 0.61}, {Index: 1, Label: "naevus", Probability: 0.2},
				{Index: 0, Probability: 0.1}, {Index: 4, Probability: 0.05}, {Index: 2, Probability: 0.02},
				{Index: 5, Probability: 0.01}, {Index: 6, Probability: 0.01},
			},
		})
	}
	return Report(info, ps...)
}

var dataURIRe = regexp.MustCompile(`<img class="(\w+)(?: pixels)?" src="data:image/png;base64,([A-Za-z0-9+/=]+)"`)

func TestReportIsOneSelfContainedFile(t *testing.T) {
	page, err := testReport(3, func(i int) heatmap.Map { return blobMap(2+float64(i), 3) }).HTML()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(page, `<section class="page"`); n != 3 {
		t.Errorf("%d page sections, want 3 (one per image)", n)
	}
	// Nothing is fetched: no URL with a scheme or protocol-relative, no script, no stylesheet link.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?\s*(https?:|//|file:)`).FindString(page); m != "" {
		t.Errorf("the report refers to the network: %q", m)
	}
	if m := regexp.MustCompile(`(?i)<script|<link|@import|url\(`).FindString(page); m != "" {
		t.Errorf("the report loads something: %q", m)
	}
	for _, want := range []string{
		"@page { size: A4", "page-break-after: always",
		"case-1.png", "case-3.png", "image 2 of 3",
		"Predicted: <b>melanoma (3)</b>, probability <b>61.0%</b>",
		"<td>naevus (1)</td>", "<td>class 0</td>",
		"gradcam", "/layer4/relu", "chosen automatically", "lesions-v2",
		strings.Repeat("ab12", 16), "SHA-256 of the model file",
		"2025-03-14 09:26:53 UTC",
		"does not show that the prediction is right", "where the evidence was",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// Five classes of the seven given, per page.
	if n := strings.Count(page, "<td>class 5</td>"); n != 0 {
		t.Errorf("the sixth class is listed %d times; a report lists five", n)
	}
	if n := strings.Count(page, "<td>class 2</td>"); n != 3 {
		t.Errorf("the fifth class is listed %d times, want once per page", n)
	}

	// Every image is an inlined PNG that decodes; each overlay has colour
	// and is not constant.
	found := map[string]int{}
	for _, m := range dataURIRe.FindAllStringSubmatch(page, -1) {
		raw, err := base64.StdEncoding.DecodeString(m[2])
		if err != nil {
			t.Fatalf("%s: data URI: %v", m[1], err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: PNG: %v", m[1], err)
		}
		found[m[1]]++
		if m[1] == "overlay" {
			if b := img.Bounds(); b.Dx() != 120 || b.Dy() != 80 {
				t.Errorf("overlay is %v, want the image's 120x80", b)
			}
			if s := colourSpread(img); s < 50 {
				t.Errorf("overlay colour spread %.1f: blank?", s)
			}
		}
	}
	if found["image"] != 3 || found["overlay"] != 3 {
		t.Errorf("inlined images: %v, want 3 images and 3 overlays", found)
	}
}

// colourSpread is the standard deviation, over pixels, of red minus blue:
// 0 for a grey or a single-colour picture.
func colourSpread(img image.Image) float64 {
	var sum, sq, n float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, _, bl := rgb8(img.At(x, y))
			d := float64(r) - float64(bl)
			sum, sq, n = sum+d, sq+d*d, n+1
		}
	}
	mean := sum / n
	return math.Sqrt(sq/n - mean*mean)
}

func TestReportExplainedClassAndEscaping(t *testing.T) {
	other := ReportClass{Index: 1, Label: "naevus", Probability: 0.2}
	r := Report(ReportInfo{Model: "<b>m</b>"}, ReportPage{
		Title: `<script>alert("x")</script>.png`, Image: greyPhoto(), Map: blobMap(3, 3),
		Top: []ReportClass{{Index: 3, Label: "melanoma", Probability: 0.61}, other}, Explained: &other,
	})
	page, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<b>m</b>") {
		t.Error("title or model name not escaped")
	}
	if !strings.Contains(page, "evidence for <b>naevus (1)</b> (probability 20.0%), not for the prediction") {
		t.Error("a page explaining another class than the prediction does not say so")
	}
	if strings.Contains(page, "heat map is empty") {
		t.Error("a map with a blob is called empty")
	}
	empty, err := Report(ReportInfo{Method: "gradcam"}, ReportPage{Image: greyPhoto(), Map: heatmap.Map{Width: 2, Height: 2, Values: make([]float32, 4)},
		Top: []ReportClass{{Probability: 1}}}).HTML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(empty, "The heat map is empty (uniform): gradcam found no region") {
		t.Error("an all-zero map is not flagged as empty")
	}
	if !strings.Contains(page, "not stated") {
		t.Error("a missing method is not marked")
	}
}

func TestReportErrors(t *testing.T) {
	good := ReportPage{Image: greyPhoto(), Map: blobMap(3, 3), Top: []ReportClass{{Index: 0, Probability: 1}}}
	cases := map[string]*ReportBuilder{
		"no pages":          Report(ReportInfo{}),
		"nil image":         Report(ReportInfo{}, ReportPage{Map: good.Map, Top: good.Top}),
		"no classes":        Report(ReportInfo{}, ReportPage{Image: good.Image, Map: good.Map}),
		"bad map":           Report(ReportInfo{}, ReportPage{Image: good.Image, Map: heatmap.Map{Width: 2, Height: 2, Values: []float32{1}}, Top: good.Top}),
		"probability > 1":   Report(ReportInfo{}, ReportPage{Image: good.Image, Map: good.Map, Top: []ReportClass{{Probability: 1.5}}}),
		"probability NaN":   Report(ReportInfo{}, ReportPage{Image: good.Image, Map: good.Map, Top: []ReportClass{{Probability: math.NaN()}}}),
		"tiny image side":   Report(ReportInfo{}, good).ImageSide(4),
		"second page fails": Report(ReportInfo{}, good, ReportPage{Image: good.Image, Map: good.Map}),
	}
	for name, r := range cases {
		if _, err := r.HTML(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Save writes nothing on error.
	path := filepath.Join(t.TempDir(), "r.html")
	if err := Report(ReportInfo{}).Save(path); err == nil {
		t.Error("Save of an empty report: no error")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save left a file after an error: %v", err)
	}
	if err := Report(ReportInfo{}, good).Save(path); err != nil {
		t.Fatal(err)
	}
}

func TestReportReducesLargeImages(t *testing.T) {
	big := image.NewRGBA(image.Rect(0, 0, 2000, 1000))
	page, err := Report(ReportInfo{}, ReportPage{Image: big, Map: blobMap(3, 3), Top: []ReportClass{{Probability: 1}}}).HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range dataURIRe.FindAllStringSubmatch(page, -1) {
		raw, _ := base64.StdEncoding.DecodeString(m[2])
		cfg, err := png.DecodeConfig(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Width != DefaultReportImageSide || cfg.Height != DefaultReportImageSide/2 {
			t.Errorf("%s is %dx%d, want %dx%d", m[1], cfg.Width, cfg.Height, DefaultReportImageSide, DefaultReportImageSide/2)
		}
	}
}

// The print test: the report opened in headless Chromium, with the network
// unused (the page refers to nothing outside itself), printed to PDF,
// then checked with poppler's pdfinfo and pdftoppm (Debian: poppler-utils).
// Without them it is skipped, except under CI=true, where it fails.

func printPrereqs(t *testing.T) (chromium string) {
	t.Helper()
	var missing []string
	if chromium = testutil.Chromium(); chromium == "" {
		missing = append(missing, "Chromium (apt-get install chromium)")
	}
	for _, tool := range []string{"pdfinfo", "pdftoppm"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (apt-get install poppler-utils)")
		}
	}
	if len(missing) > 0 {
		testutil.Unavailable(t, "the print test needs "+strings.Join(missing, " and "))
	}
	return chromium
}

// printPages prints the HTML page to PDF in Chromium and returns the PDF's
// page count and each page rasterised at 50 dpi.
func printPages(t *testing.T, chromium, page string) (int, []image.Image) {
	t.Helper()
	dir := t.TempDir()
	pdf := filepath.Join(dir, "report.pdf")
	runChromium(t, chromium, page, "--no-pdf-header-footer", "--print-to-pdf="+pdf)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := exec.CommandContext(ctx, "pdfinfo", pdf).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo gives no page count:\n%s", info)
	}
	if !regexp.MustCompile(`(?m)^Page size:.*\(A4\)`).Match(info) {
		t.Errorf("the PDF is not A4:\n%s", info)
	}
	n, _ := strconv.Atoi(string(m[1]))
	if out, err := exec.CommandContext(ctx, "pdftoppm", "-r", "50", "-png", pdf, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "page-*.png"))
	var pages []image.Image
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, img)
	}
	return n, pages
}

// hotPixels counts red-to-yellow pixels (Jet's upper end): on a grey photo
// only the heat map's strong regions, and the top of the colour scale, have them.
func hotPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl := rgb8(img.At(x, y))
			if int(r)-int(bl) > 60 && r >= g {
				n++
			}
		}
	}
	return n
}

func TestReportPrintsOnePagePerImageWithTheOverlay(t *testing.T) {
	chromium := printPrereqs(t)
	page, err := testReport(3, func(i int) heatmap.Map { return blobMap(2+float64(i), 3) }).HTML()
	if err != nil {
		t.Fatal(err)
	}
	n, pages := printPages(t, chromium, page)
	if d := os.Getenv("REPORT_DEBUG_DIR"); d != "" {
		for i, p := range pages {
			f, _ := os.Create(filepath.Join(d, fmt.Sprintf("page-%d.png", i+1)))
			png.Encode(f, p)
			f.Close()
		}
	}
	if n != 3 || len(pages) != 3 {
		t.Fatalf("printed %d pages (%d rasterised), want 3: one per image", n, len(pages))
	}

	// Control: the same report with blank heat maps (all zero: the overlay
	// is a uniform blue tint). Its hot pixels are the colour scale's alone.
	blank, err := testReport(1, func(int) heatmap.Map { return heatmap.Map{Width: 8, Height: 8, Values: make([]float32, 64)} }).HTML()
	if err != nil {
		t.Fatal(err)
	}
	_, control := printPages(t, chromium, blank)
	legend := hotPixels(control[0])
	for i, p := range pages {
		if hot := hotPixels(p); hot < legend+600 || hot < 2*legend {
			t.Errorf("page %d: %d hot pixels, the colour scale alone has %d: the overlay is missing or blank", i+1, hot, legend)
		} else {
			t.Logf("page %d: %d hot pixels (colour scale alone: %d)", i+1, hot, legend)
		}
	}
}

func TestReportEscapesHostileText(t *testing.T) {
	label := `<script>alert(1)</script>`
	title := `Tom & "Jerry" <i>'s</i>.png`
	info := ReportInfo{Model: `m" onload="alert(2)`, Method: `<img src=x onerror=alert(3)>`, Layers: []string{`</code><script>`}, Date: reportDate}
	page, err := Report(info, ReportPage{
		Title: title, Image: greyPhoto(), Map: blobMap(3, 3),
		Top: []ReportClass{{Index: 3, Label: label, Probability: 0.9}},
	}).HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{label, "<script", title, `"Jerry"`, "<i>", info.Model, info.Method, info.Layers[0]} {
		if strings.Contains(page, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	// Escaped, the strings are still there, and read back as given.
	for _, c := range []struct{ re, want string }{
		{`<h1>(.*?)</h1>`, title},
		{`<title>(.*?)</title>`, "Heat-map report: " + info.Model},
		{`Predicted: <b>(.*?)</b>`, label + " (3)"},
		{`<tr class="predicted"><td>1</td><td>(.*?)</td>`, label + " (3)"},
		{`<tr><th>Model</th><td>(.*?)</td>`, info.Model},
		{`<tr><th>Method</th><td>(.*?)</td>`, info.Method},
		{`<td><code>(.*?)</code>`, info.Layers[0]},
	} {
		m := regexp.MustCompile(c.re).FindStringSubmatch(page)
		if m == nil {
			t.Errorf("no match for %s", c.re)
			continue
		}
		if got := html.UnescapeString(m[1]); got != c.want {
			t.Errorf("%s: %q reads %q, want %q", c.re, m[1], got, c.want)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt; (3)", "Tom &amp; &#34;Jerry&#34;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The images are still inlined whole.
	if n := len(dataURIRe.FindAllString(page, -1)); n != 2 {
		t.Errorf("%d inlined image and overlay, want 2", n)
	}
	// The report's srcdoc, unescaped, is the page itself.
	frame, err := Report(info, ReportPage{Title: title, Image: greyPhoto(), Map: blobMap(3, 3),
		Top: []ReportClass{{Index: 3, Label: label, Probability: 0.9}}}).IFrame()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^<iframe srcdoc="([^"<>]*)" title=`).FindStringSubmatch(frame)
	if m == nil {
		t.Fatalf("IFrame gives %.200q", frame)
	}
	if html.UnescapeString(m[1]) != page {
		t.Error("the iframe's srcdoc is not the page")
	}
	// Only data URIs made by dataURI are written into src unescaped.
	for _, bad := range []string{"javascript:alert(1)", `data:image/png;base64,AA" onerror="alert(1)`} {
		if _, err := srcAttr(template.URL(bad)); err == nil {
			t.Errorf("srcAttr(%q): no error", bad)
		}
	}
}
