package display

import (
	"errors"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/convlens/convlens/heatmap"
)

// fakeEcharts writes a stand-in echarts script and returns its path. It
// contains "</script>" in a string, as a real script might.
func fakeEcharts(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "echarts.min.js")
	js := "/* FAKE-ECHARTS-MARKER */ var s = '</script>'; window.echarts = {};"
	if err := os.WriteFile(path, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustHTML(t *testing.T, c *Chart) string {
	t.Helper()
	s, err := c.HTML()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustContain(t *testing.T, page string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(page, p) {
			t.Errorf("page lacks %q", p)
		}
	}
}

func TestHeatmapChartData(t *testing.T) {
	t.Setenv(EChartsJSEnv, "")
	nan := float32(math.NaN())
	m := heatmap.Map{Width: 3, Height: 2, Values: []float32{0.125, 0.5, 0.875, 1.5, -2, nan}}
	page := mustHTML(t, HeatmapChart(m).Title("layer4 CAM"))
	mustContain(t, page,
		"<!DOCTYPE html>", "<title>layer4 CAM</title>",
		// [column, row, value] for every cell, row-major; NaN is missing.
		`[0,0,0.125]`, `[1,0,0.5]`, `[2,0,0.875]`, `[0,1,1.5]`, `[1,1,-2]`, `[2,1,"-"]`,
		// The tooltip shows position and value.
		`'column x = ' + v[0] + ', row y = ' + v[1]`, `value = <b>' + v[2]`,
		// Row 0 at the top.
		`"inverse":true`,
		// The colour scale spans min to max with Jet's ends.
		`{visualMap: {min: -2, max: 1.5, precision: 2}}`, `"#000080"`, `"#800000"`,
		// The default script.
		`<script src="`+DefaultEChartsURL+`"></script>`,
	)
	// Values are written in the cells of small maps only.
	if !strings.Contains(page, `"label":{"show":true`) || !strings.Contains(page, "v.toFixed(2)") {
		t.Error("small map has no cell labels with 2 decimals")
	}
	big := heatmap.Map{Width: 17, Height: 17, Values: make([]float32, 289)}
	if strings.Contains(mustHTML(t, HeatmapChart(big)), `"label":{"show":true`) {
		t.Error("17x17 map has cell labels")
	}
	// Constant maps still get a usable scale; another colormap changes the colours.
	page = mustHTML(t, HeatmapChart(heatmap.Map{Width: 1, Height: 1, Values: []float32{0}}).Colormap(Viridis))
	mustContain(t, page, `{visualMap: {min: -0.5, max: 0.5`, `"#440154"`, `"#fde725"`)

	if _, err := HeatmapChart(heatmap.Map{Width: 2, Height: 2}).HTML(); err == nil {
		t.Error("chart of an invalid map succeeded")
	}
	if _, err := HeatmapChart(m).Size(0, 100).HTML(); err == nil {
		t.Error("chart of width 0 succeeded")
	}
}

func TestChartScriptSources(t *testing.T) {
	local := fakeEcharts(t)
	m := heatmap.Map{Width: 1, Height: 1, Values: []float32{1}}

	t.Setenv(EChartsJSEnv, local)
	page := mustHTML(t, HeatmapChart(m))
	mustContain(t, page, "FAKE-ECHARTS-MARKER", `var s = '<\/script>'`)
	if strings.Contains(page, DefaultEChartsURL) || strings.Contains(page, "<script src=") {
		t.Error("with a local script the page still loads one from the network")
	}
	// Only the two real elements end with </script>.
	if n := strings.Count(strings.ToLower(page), "</script"); n != 2 {
		t.Errorf("page has %d </script, want 2", n)
	}

	// An explicit URL beats the environment; an explicit file beats a URL.
	page = mustHTML(t, HeatmapChart(m).ScriptURL("js/echarts.min.js"))
	mustContain(t, page, `<script src="js/echarts.min.js"></script>`)
	t.Setenv(EChartsJSEnv, "")
	page = mustHTML(t, HeatmapChart(m).ScriptURL("x.js").ScriptFile(local))
	mustContain(t, page, "FAKE-ECHARTS-MARKER")

	// A missing script is an error, not a silent fallback to the network.
	t.Setenv(EChartsJSEnv, filepath.Join(t.TempDir(), "missing.js"))
	if _, err := HeatmapChart(m).HTML(); err == nil {
		t.Error("missing script file: no error")
	}
	empty := filepath.Join(t.TempDir(), "empty.js")
	os.WriteFile(empty, nil, 0o644)
	if _, err := HeatmapChart(m).ScriptFile(empty).HTML(); err == nil {
		t.Error("empty script file: no error")
	}
}

func TestChartIFrame(t *testing.T) {
	t.Setenv(EChartsJSEnv, fakeEcharts(t))
	c := TopKChart([]float32{0.2, 0.8}, []string{"cat & dog", `say "hi"`}, 2).Title("Top 2").Size(500, 300)
	frag, err := c.IFrame()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^<iframe srcdoc="([^"]*)" title="Top 2" width="516" height="316" [^>]*sandbox="allow-scripts"></iframe>$`)
	sub := re.FindStringSubmatch(frag)
	if sub == nil {
		t.Fatalf("unexpected iframe: %.300s", frag)
	}
	if strings.Contains(sub[1], "<") {
		t.Error("srcdoc holds an unescaped <")
	}
	if got, want := html.UnescapeString(sub[1]), mustHTML(t, c); got != want {
		t.Error("srcdoc does not unescape to the chart's page")
	}
}

func TestTopKChart(t *testing.T) {
	t.Setenv(EChartsJSEnv, "")
	scores := []float32{0.1, 0.7, 0.05, 0.15, 0.15}
	page := mustHTML(t, TopKChart(scores, []string{"a", "b", "c", "d", "e"}, 3))
	// Best first; the tie between d and e keeps index order.
	mustContain(t, page, `"data":["b (1)","d (3)","e (4)"]`,
		`{"name":"b (1)","value":0.7}`, `"formatter":"{c}"`, `"position":"right"`)
	if strings.Contains(page, `"a (0)"`) {
		t.Error("top-3 chart shows the fourth score")
	}
	page = mustHTML(t, TopKChart(scores, nil, 10))
	mustContain(t, page, `"data":["class 1","class 3","class 4","class 0","class 2"]`,
		`height:300px`) // 120 + 36 per bar

	for name, c := range map[string]*Chart{
		"no scores":      TopKChart[float32](nil, nil, 1),
		"k = 0":          TopKChart(scores, nil, 0),
		"labels too few": TopKChart(scores, []string{"a"}, 1),
		"NaN score":      TopKChart([]float32{float32(math.NaN())}, nil, 1),
	} {
		if _, err := c.HTML(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLayerChart(t *testing.T) {
	t.Setenv(EChartsJSEnv, "")
	page := mustHTML(t, LayerChart([]string{"conv1", "layer1", "layer2"},
		Series{Name: "blank", Values: []float64{0, 0.25, math.NaN()}},
		Series{Name: "dead", Values: []float64{0.1, 0.2, 0.3}},
	).Axes("depth", "fraction of channels"))
	mustContain(t, page,
		`"data":["conv1","layer1","layer2"]`,
		`"name":"fraction of channels"`, `"name":"depth"`,
		// Values, with a gap for NaN.
		`{"value":0},{"value":0.25},{"value":"-"}`, `{"value":0.1},{"value":0.2},{"value":0.3}`,
		// Distinct markers and dashes, labels and a legend: no colour needed.
		`"symbol":"circle"`, `"symbol":"rect"`, `"type":"solid"`, `"type":"dashed"`,
		`"label":{"show":true,"position":"top","formatter":"{c}"}`,
		`"legend":{"show":true`,
	)
	if _, err := LayerChart([]string{"a", "b"}, Series{Name: "x", Values: []float64{1}}).HTML(); err == nil {
		t.Error("series shorter than the layers: no error")
	}
	if _, err := LayerChart([]string{"a"}).HTML(); err == nil {
		t.Error("no series: no error")
	}
	if _, err := LayerChart(nil, Series{Name: "x"}).HTML(); err == nil {
		t.Error("no layers: no error")
	}
}

// TestChartTextCannotInject checks that titles and labels stay text.
func TestChartTextCannotInject(t *testing.T) {
	t.Setenv(EChartsJSEnv, "")
	evil := []string{"</script><script>alert(1)</script>", "__f__alert(2)__f__", "<!--"}
	page := mustHTML(t, TopKChart([]float32{3, 2, 1}, evil, 3).Title("</SCRIPT><b>x"))
	if n := strings.Count(strings.ToLower(page), "</script"); n != 2 {
		t.Errorf("page has %d </script, want 2 (its own)", n)
	}
	// Inside the script element, "<script>" is plain text of a JSON string.
	mustContain(t, page, `"<\/script><script>alert(1)<\/script> (0)"`)
	// The JavaScript marker is removed, so the label stays a string.
	mustContain(t, page, `"alert(2) (1)"`)
	if strings.Contains(page, "<!--") {
		t.Error("page contains <!-- from a label")
	}
}

func TestChartShow(t *testing.T) {
	t.Setenv(EChartsJSEnv, "")
	c := LayerChart([]string{"a"}, Series{Name: "s", Values: []float64{1}})

	notNotebook(t)
	t.Setenv(DisplayDirEnv, "")
	if err := c.Show(); !errors.Is(err, ErrNotNotebook) {
		t.Errorf("Show outside a notebook: %v, want ErrNotNotebook", err)
	}
	dir := t.TempDir()
	t.Setenv(DisplayDirEnv, dir)
	if err := c.Show(); err != nil {
		t.Fatal(err)
	}
	names := dirEntries(t, dir)
	if len(names) != 1 || !strings.HasSuffix(names[0], ".html") {
		t.Fatalf("Show wrote %v", names)
	}
	b, _ := os.ReadFile(filepath.Join(dir, names[0]))
	if string(b) != mustHTML(t, c) {
		t.Error("Show outside a notebook did not write the whole page")
	}

	var sent string
	oldNB, oldHTML := isNotebook, sendHTML
	t.Cleanup(func() { isNotebook, sendHTML = oldNB, oldHTML })
	isNotebook = func() bool { return true }
	sendHTML = func(s string) error { sent = s; return nil }
	if err := c.Show(); err != nil {
		t.Fatal(err)
	}
	if frag, _ := c.IFrame(); sent != frag {
		t.Error("Show in a notebook did not send the iframe")
	}
}
