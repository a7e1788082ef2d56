package display

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/testutil"
)

// The browser tests open chart pages in headless Chromium, offline, with a
// local echarts.min.js, and check what the browser actually drew. They need
//
//   - Chromium: Debian's "chromium" package (apt-get install -y chromium);
//   - echarts.min.js: $CONVLENS_ECHARTS_JS, or display/testdata/echarts.min.js
//     as fetched by display/testdata/fetch_echarts.sh (npm).
//
// Without them the tests are skipped, except under CI=true, where they fail.

func browserPrereqs(t *testing.T) (chromium, echartsJS string) {
	t.Helper()
	var missing []string
	if chromium = testutil.Chromium(); chromium == "" {
		missing = append(missing, "Chromium (apt-get install -y chromium)")
	}
	echartsJS = os.Getenv(EChartsJSEnv)
	if echartsJS == "" {
		echartsJS = filepath.Join("testdata", "echarts.min.js")
	}
	if fi, err := os.Stat(echartsJS); err != nil || fi.Size() == 0 {
		missing = append(missing, fmt.Sprintf("echarts.min.js (set %s or run display/testdata/fetch_echarts.sh)", EChartsJSEnv))
	}
	if len(missing) > 0 {
		testutil.Unavailable(t, "browser test needs "+strings.Join(missing, " and "))
	}
	abs, err := filepath.Abs(echartsJS)
	if err != nil {
		t.Fatal(err)
	}
	return chromium, abs
}

// runChromium loads the HTML page in headless Chromium with the flags
// shared/STACK.md gives for running as root, plus extra, and returns
// standard output.
func runChromium(t *testing.T, chromium, page string, extra ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "page.html")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--hide-scrollbars", "--window-size=1000,760",
		// Let timers and animation frames run before the dump or screenshot.
		"--virtual-time-budget=5000",
	}
	args = append(args, extra...)
	args = append(args, "file://"+path)
	cmd := exec.CommandContext(ctx, chromium, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}

func dumpDOM(t *testing.T, chromium, page string) string {
	t.Helper()
	return string(runChromium(t, chromium, page, "--dump-dom"))
}

func screenshot(t *testing.T, chromium, page string) image.Image {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shot.png")
	runChromium(t, chromium, page, "--screenshot="+out)
	f, err := os.Open(out)
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

// countNear counts the pixels within distance tol of c in every channel.
func countNear(img image.Image, c color.RGBA, tol int) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl := rgb8(img.At(x, y))
			if absInt(int(r)-int(c.R)) <= tol && absInt(int(g)-int(c.G)) <= tol && absInt(int(bl)-int(c.B)) <= tol {
				n++
			}
		}
	}
	return n
}

// textElement matches an SVG <text> element holding s.
func hasSVGText(dom, s string) bool {
	return regexp.MustCompile(`<text[^>]*>[^<]*` + regexp.QuoteMeta(s)).MatchString(dom)
}

func TestBrowserTopKAndLayerChartsDrawTheirText(t *testing.T) {
	chromium, js := browserPrereqs(t)
	top := TopKChart([]float32{0.1, 0.7, 0.05, 0.15}, []string{"ant", "bee", "cat", "dog"}, 3).
		Title("Top 3").SVG(true).ScriptFile(js)
	dom := dumpDOM(t, chromium, mustHTML(t, top))
	if !strings.Contains(dom, "<svg") {
		t.Fatalf("echarts drew no SVG; the script did not run offline?\n%.2000s", dom)
	}
	for _, s := range []string{"Top 3", "bee (1)", "dog (3)", "ant (0)", "0.7", "0.15", "0.1"} {
		if !hasSVGText(dom, s) {
			t.Errorf("no SVG text %q in the top-k chart", s)
		}
	}
	if hasSVGText(dom, "cat (2)") {
		t.Error("the fourth class is drawn")
	}

	layers := LayerChart([]string{"conv1", "layer1", "layer2"},
		Series{Name: "blank", Values: []float64{0, 0.25, 0.5}},
		Series{Name: "dead", Values: []float64{0.125, 0.375, 0.625}},
	).SVG(true).ScriptFile(js)
	dom = dumpDOM(t, chromium, mustHTML(t, layers))
	for _, s := range []string{"conv1", "layer2", "blank", "dead", "0.25", "0.375", "0.625"} {
		if !hasSVGText(dom, s) {
			t.Errorf("no SVG text %q in the layer chart", s)
		}
	}
	// The dashed series is drawn dashed.
	if !strings.Contains(dom, "stroke-dasharray") {
		t.Error("no dashed line in the layer chart")
	}
}

func TestBrowserHeatmapTooltipAndColours(t *testing.T) {
	chromium, js := browserPrereqs(t)
	m := heatmap.Map{Width: 3, Height: 2, Values: []float32{0.125, 0.5, 0.875, 1.5, -2, 0.25}}
	c := HeatmapChart(m).ScriptFile(js)
	page := mustHTML(t, c)

	// Hover over cell (1, 1), as a mouse would, through echarts' action.
	hover := `<script>goecharts_convlens_chart.dispatchAction({type: "showTip", seriesIndex: 0, dataIndex: 4});</script>`
	// (The echarts script itself contains "</body>" in a string.)
	end := strings.LastIndex(page, "</body>")
	dom := dumpDOM(t, chromium, page[:end]+hover+page[end:])
	if !strings.Contains(dom, "<canvas") {
		t.Fatalf("echarts drew no canvas; the script did not run offline?\n%.2000s", dom)
	}
	if !strings.Contains(dom, "column x = 1, row y = 1<br>value = <b>-2</b>") {
		i := strings.Index(dom, "column x")
		t.Errorf("tooltip for cell (1, 1) not shown; around it: %q", dom[max(0, i-100):min(len(dom), max(0, i)+200)])
	}

	// The lowest and highest cells are painted with Jet's ends.
	shot := screenshot(t, chromium, page)
	for _, want := range []color.RGBA{Jet.Index(0), Jet.Index(255)} {
		if n := countNear(shot, want, 2); n < 5000 {
			t.Errorf("%d pixels of %v; want a whole cell", n, want)
		}
	}
}

// TestBrowserIFrameEscapesRequireJS shows a chart through IFrame in a page
// that, like an exported notebook, has an AMD loader (RequireJS) defined:
// the echarts script would register itself with it and never create the
// global "echarts", but inside the iframe it cannot see the loader.
func TestBrowserIFrameEscapesRequireJS(t *testing.T) {
	chromium, js := browserPrereqs(t)
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	c := HeatmapChart(m).Size(600, 500).ScriptFile(js)
	frag, err := c.IFrame()
	if err != nil {
		t.Fatal(err)
	}
	const amd = `<script>window.define = function () {}; window.define.amd = {};</script>`
	shot := screenshot(t, chromium, "<!DOCTYPE html><html><head>"+amd+"</head><body>"+frag+"</body></html>")
	for _, want := range []color.RGBA{Jet.Index(0), Jet.Index(255)} {
		if n := countNear(shot, want, 2); n < 5000 {
			t.Errorf("%d pixels of %v in the iframe; want a whole cell", n, want)
		}
	}

	// Control: the same page with the loader in it draws nothing, so it is
	// the iframe that made the difference.
	page := mustHTML(t, c)
	broken := strings.Replace(page, "<head>", "<head>"+amd, 1)
	shot = screenshot(t, chromium, broken)
	if n := countNear(shot, Jet.Index(255), 2); n != 0 {
		t.Errorf("control: the chart drew %d pixels next to an AMD loader; the test proves nothing", n)
	}
}
