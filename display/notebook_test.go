package display

import (
	"bytes"
	"encoding/base64"
	"html"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/convlens/convlens/heatmap"
)

// barLengths returns, for each horizontal band of the picture holding the
// palette's first colour (a bar), its length in pixels, top to bottom.
func barLengths(img image.Image) []int {
	b := img.Bounds()
	var lengths []int
	inBar := false
	for y := b.Min.Y; y < b.Max.Y; y++ {
		n := 0
		for x := b.Min.X; x < b.Max.X; x++ {
			if img.At(x, y) == color.Color(chartPalette[0]) {
				n++
			}
		}
		switch {
		case n > 0 && !inBar:
			lengths, inBar = append(lengths, n), true
		case n == 0:
			inBar = false
		}
	}
	return lengths
}

func TestTopKChartImageDrawsBarsInProportionBestFirst(t *testing.T) {
	c := TopKChart([]float64{0.1, 0.4, 0.2, 0.3}, []string{"ant", "bee", "cat", "dog"}, 3).Title("top 3")
	img, err := c.Image()
	if err != nil {
		t.Fatal(err)
	}
	w, h := c.size()
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("picture is %v, want the chart's %dx%d", b, w, h)
	}
	bars := barLengths(img)
	if len(bars) != 3 {
		t.Fatalf("%d bars drawn, want 3 (k)", len(bars))
	}
	// Best first: bee 0.4, dog 0.3, cat 0.2; bars from 0, so lengths are
	// proportional to the scores (to a pixel of rounding).
	for i, want := range []float64{0.4, 0.3, 0.2} {
		got := float64(bars[i]) / float64(bars[0]) * 0.4
		if math.Abs(got-want) > 0.4/float64(bars[0])*2 {
			t.Errorf("bar %d is %d px, %.3f of the scale; want %.3f", i, bars[i], got, want)
		}
	}
}

func TestHeatmapChartImageColoursEachCellByItsValue(t *testing.T) {
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 2, 4}}
	c := HeatmapChart(m).Colormap(Viridis)
	img, err := c.Image()
	if err != nil {
		t.Fatal(err)
	}
	// Find the colour of each value at the centre of the grid's cells: the
	// grid is the area of the four colours; check that each appears.
	for _, v := range m.Values {
		want := Viridis.At(float64(v) / 4)
		if countNear(img, want, 0) < 400 {
			t.Errorf("value %g: colour %v covers fewer than 400 pixels", v, want)
		}
	}
}

func TestLayerChartImageDrawsEveryPointAboveItsValue(t *testing.T) {
	layers := []string{"stem", "layer1", "layer2"}
	c := LayerChart(layers, Series{Name: "blank", Values: []float64{0, 0.5, 1}}).Size(600, 400)
	img, err := c.Image()
	if err != nil {
		t.Fatal(err)
	}
	// The markers are the series' colour; the highest value's is highest.
	col := chartPalette[0]
	var ys []int
	b := img.Bounds()
	// Column bands: three equal parts of the plot; find the topmost marker pixel in each.
	for part := range 3 {
		top := -1
		for y := b.Min.Y + 60; y < b.Max.Y && top < 0; y++ {
			for x := b.Min.X + b.Dx()*part/3; x < b.Min.X+b.Dx()*(part+1)/3; x++ {
				if img.At(x, y) == color.Color(col) {
					top = y
					break
				}
			}
		}
		ys = append(ys, top)
	}
	if !(ys[0] > ys[1] && ys[1] > ys[2] && ys[2] > 0) {
		t.Errorf("topmost marker rows per layer %v: want decreasing (0, 0.5, 1 rise)", ys)
	}
}

func TestChartImageRefusesWhatTheChartRefuses(t *testing.T) {
	for name, c := range map[string]*Chart{
		"k = 0":           TopKChart([]float32{1, 2}, nil, 0),
		"labels too few":  TopKChart([]float32{1, 2}, []string{"a"}, 1),
		"no layers":       LayerChart(nil, Series{Name: "s"}),
		"invalid map":     HeatmapChart(heatmap.Map{Width: 2, Height: 2, Values: []float32{1}}),
		"negative height": TopKChart([]float32{1}, nil, 1).Size(100, -1),
	} {
		if _, err := c.Image(); err == nil {
			t.Errorf("%s: Image gave no error", name)
		}
		if _, err := c.NotebookHTML("x"); err == nil {
			t.Errorf("%s: NotebookHTML gave no error", name)
		}
	}
}

func TestNotebookHTMLHoldsItsPictureAndNoECharts(t *testing.T) {
	c := TopKChart([]float32{0.1, 0.7}, []string{"a", "b"}, 2).Title("two")
	if _, err := c.NotebookHTML("1bad"); err == nil {
		t.Error("an id starting with a digit was accepted")
	}
	frag, err := c.NotebookHTML("chart_one")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`src="data:image/png;base64,([^"]+)"`).FindStringSubmatch(frag)
	if m == nil {
		t.Fatalf("no static picture in the fragment:\n%.500s", frag)
	}
	raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if w, h := c.size(); img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Errorf("static picture is %v, want %dx%d", img.Bounds(), w, h)
	}
	for _, want := range []string{`id="chart_one"`, "goecharts_chart_one", "getElementById('chart_one')", "window.echarts"} {
		if !strings.Contains(frag, want) {
			t.Errorf("fragment lacks %q", want)
		}
	}
	if strings.Contains(frag, chartID) {
		t.Errorf("fragment still uses the page's fixed id %q", chartID)
	}
	if strings.Contains(frag, "<script src") || len(frag) > 200_000 {
		t.Errorf("fragment loads or embeds echarts (%d bytes)", len(frag))
	}
}

func TestEChartsScriptInlinesTheLocalFileOnceSafely(t *testing.T) {
	js := filepath.Join(t.TempDir(), "echarts.min.js")
	if err := os.WriteFile(js, []byte(`window.echarts = {init: 1}; var s = "</script>";`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EChartsJSEnv, js)
	s, err := EChartsScript()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(s, "</script>") != 1 || !strings.Contains(s, `<\/script>`) {
		t.Errorf("the file's </script> is not escaped:\n%s", s)
	}
	for _, want := range []string{"window.echarts = {init: 1}", "window.define = undefined", "window.define = amd"} {
		if !strings.Contains(s, want) {
			t.Errorf("loader lacks %q", want)
		}
	}
	t.Setenv(EChartsJSEnv, "")
	s, err = EChartsScript()
	if err != nil || !strings.Contains(s, DefaultEChartsURL) {
		t.Errorf("without a local file the loader does not load %s: %v\n%s", DefaultEChartsURL, err, s)
	}
	t.Setenv(EChartsJSEnv, filepath.Join(t.TempDir(), "missing.js"))
	if _, err := EChartsScript(); err == nil {
		t.Error("a missing local file gave no error")
	}
}

// TestBrowserNotebookChartsDrawUnderRequireJSWithEChartsLoadedOnce puts
// the loader and two chart fragments in a page that, like a notebook's,
// defines an AMD loader: both charts must draw with the one echarts and
// hide their pictures.
func TestBrowserNotebookChartsDrawUnderRequireJSWithEChartsLoadedOnce(t *testing.T) {
	chromium, js := browserPrereqs(t)
	t.Setenv(EChartsJSEnv, js)
	loader, err := EChartsScript()
	if err != nil {
		t.Fatal(err)
	}
	a, err := TopKChart([]float32{0.1, 0.7, 0.2}, nil, 3).Title("first").NotebookHTML("first_chart")
	if err != nil {
		t.Fatal(err)
	}
	b, err := HeatmapChart(heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 2, 3}}).Title("second").NotebookHTML("second_chart")
	if err != nil {
		t.Fatal(err)
	}
	page := `<!DOCTYPE html><html><head><meta charset="utf-8">
<script>window.define = function () { window.captured = true; }; window.define.amd = {};</script>
</head><body>` + a + loader + b + `
<script>setTimeout(function () {
  document.body.setAttribute("data-result", JSON.stringify({
    define: typeof window.define, captured: !!window.captured, echarts: !!(window.echarts && window.echarts.init),
    drawn: Array.from(document.querySelectorAll('[data-drawn]')).map(function (e) { return e.id; }),
    canvases: document.querySelectorAll('.convlens-chart-live canvas').length,
    hidden: Array.from(document.querySelectorAll('img.convlens-chart-static')).filter(function (i) { return i.style.display === 'none'; }).length
  }));
}, 1500);</script></body></html>`
	dom := dumpDOM(t, chromium, page)
	m := regexp.MustCompile(`data-result="([^"]*)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page's check did not run:\n%.2000s", dom)
	}
	got := strings.ReplaceAll(m[1], "&quot;", `"`)
	for _, want := range []string{`"define":"function"`, `"captured":false`, `"echarts":true`,
		`"drawn":["first_chart","second_chart"]`, `"canvases":2`, `"hidden":2`} {
		if !strings.Contains(got, want) {
			t.Errorf("page state %s lacks %s", got, want)
		}
	}
}
