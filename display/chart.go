package display

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/convlens/convlens/heatmap"
	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"
)

// EChartsJSEnv names the environment variable that points charts at a local
// copy of echarts.min.js, for machines without internet access. When it is
// set (and no Chart.ScriptFile or Chart.ScriptURL was given), the file is
// read and inlined into every chart page, so the page works offline and can
// be mailed or archived as one file. The npm package "echarts" ships the
// file as dist/echarts.min.js.
const EChartsJSEnv = "CONVLENS_ECHARTS_JS"

// DefaultEChartsURL is where chart pages load echarts from when neither an
// option nor EChartsJSEnv says otherwise: go-echarts' own asset host.
const DefaultEChartsURL = "https://go-echarts.github.io/go-echarts-assets/assets/echarts.min.js"

// chartID is the DOM id of the chart's element. Every page holds one chart,
// and notebooks show each page in its own iframe, so a fixed id is safe and
// keeps the output reproducible.
const chartID = "convlens_chart"

type chartKind int

const (
	heatmapChart chartKind = iota
	topKChart
	layerChart
)

// A Chart is an interactive chart drawn in the browser by Apache ECharts
// (through go-echarts). Create one with HeatmapChart, TopKChart or
// LayerChart, set options with its methods, then render it as a whole HTML
// page (RenderHTML, HTML), as an iframe for notebooks (IFrame), or show it
// (Show).
//
// Option methods return the Chart so that calls chain. Invalid data is
// reported by the rendering methods.
type Chart struct {
	kind          chartKind
	title         string
	width, height int
	xName, yName  string
	svg           bool
	scriptFile    string
	scriptURL     string

	m    heatmap.Map // heatmapChart
	cmap Colormap    // heatmapChart

	scores []float32 // topKChart
	labels []string  // topKChart
	k      int       // topKChart

	layers []string // layerChart
	series []Series // layerChart
}

// HeatmapChart returns a chart of m as a grid of coloured cells, row 0 at
// the top. Hovering over a cell shows its column x, row y and value; maps
// of at most 256 values also have each value written in its cell. The
// colour scale (Jet by default) spans the map's minimum to maximum and is
// drawn with its values beside the grid; dragging its handles filters
// cells by value.
//
// Chart the map at its own resolution (a 7x7 or 14x14 CAM): every value
// becomes one cell in the page.
func HeatmapChart(m heatmap.Map) *Chart {
	return &Chart{kind: heatmapChart, m: m, cmap: Jet, width: 720, height: 600,
		xName: "x", yName: "y"}
}

// TopKChart returns a horizontal bar chart of the k highest scores, best at
// the top, each bar labelled with its score. labels, if not nil, gives the
// class name of each score index and must be as long as scores; bars are
// labelled "name (index)", or "class index" without names. Ties keep index
// order. k larger than len(scores) shows all scores. Scores may be logits
// ([]float32) or probabilities (models.Softmax returns []float64).
func TopKChart[F float32 | float64](scores []F, labels []string, k int) *Chart {
	s := make([]float32, len(scores))
	for i, v := range scores {
		s[i] = float32(v)
	}
	return &Chart{kind: topKChart, scores: s, labels: labels, k: k, width: 720,
		xName: "score"}
}

// A Series is one named line of a LayerChart: one value per layer.
// NaN values are left out (the line has a gap there).
type Series struct {
	Name   string
	Values []float64
}

// LayerChart returns a line chart of per-layer quantities against depth,
// such as the fraction of blank feature maps in each layer: layers are the
// layer names from input to output, and each Series has one value per
// layer. So that no information rests on colour alone, every series has its
// own marker shape and line dash, a legend, and each point is labelled with
// its value.
func LayerChart(layers []string, series ...Series) *Chart {
	return &Chart{kind: layerChart, layers: layers, series: series, width: 900, height: 500,
		xName: "layer (input → output)"}
}

// Title sets the chart's title.
func (c *Chart) Title(s string) *Chart { c.title = s; return c }

// Size sets the chart's size in CSS pixels. The defaults are 720x600 for
// HeatmapChart, 720 wide and 36 pixels per bar for TopKChart, and 900x500
// for LayerChart.
func (c *Chart) Size(width, height int) *Chart { c.width, c.height = width, height; return c }

// Axes sets the names shown on the horizontal and vertical axes.
func (c *Chart) Axes(xName, yName string) *Chart { c.xName, c.yName = xName, yName; return c }

// Colormap sets the colour scale of a HeatmapChart (default Jet). Other
// charts ignore it.
func (c *Chart) Colormap(cm Colormap) *Chart { c.cmap = cm; return c }

// SVG makes the browser draw the chart as SVG instead of on a canvas:
// sharper when printed or zoomed, and its text is in the page, but slower
// for big heat maps.
func (c *Chart) SVG(on bool) *Chart { c.svg = on; return c }

// ScriptFile makes the page inline the echarts script read from path (a
// local echarts.min.js), so that it works offline. It overrides
// EChartsJSEnv and a previous ScriptURL.
func (c *Chart) ScriptFile(path string) *Chart { c.scriptFile, c.scriptURL = path, ""; return c }

// ScriptURL makes the page load the echarts script from url. It overrides
// EChartsJSEnv and a previous ScriptFile.
func (c *Chart) ScriptURL(url string) *Chart { c.scriptURL, c.scriptFile = url, ""; return c }

// RenderHTML writes the chart as a whole, self-contained HTML page. The
// echarts script is, in order of precedence: inlined from ScriptFile,
// loaded from ScriptURL, inlined from the file named by the environment
// variable CONVLENS_ECHARTS_JS (EChartsJSEnv), or loaded from
// DefaultEChartsURL. A script file that cannot be read is an error, never a
// silent fallback to the network.
func (c *Chart) RenderHTML(w io.Writer) error {
	page, err := c.HTML()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, page)
	return err
}

// HTML returns the chart as a whole HTML page; see RenderHTML.
func (c *Chart) HTML() (string, error) {
	snip, err := c.snippet()
	if err != nil {
		return "", err
	}
	script, err := c.scriptTag()
	if err != nil {
		return "", err
	}
	title := c.title
	if title == "" {
		title = "convlens chart"
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n", html.EscapeString(title))
	b.WriteString(script)
	b.WriteString("<style>body{margin:0;background:#fff;color:#1a1a1a;font-family:sans-serif}" +
		".container{display:flex;justify-content:center;align-items:center;padding:8px}" +
		".item{margin:auto}</style>\n</head>\n<body>\n")
	b.WriteString(snip.Element)
	b.WriteString("\n")
	b.WriteString(snip.Script)
	b.WriteString("\n</body>\n</html>\n")
	return b.String(), nil
}

// IFrame returns the chart as an HTML fragment for a notebook cell: the page
// of HTML, inside an <iframe srcdoc="..."> sized to the chart. The iframe
// keeps the chart's script away from the notebook's own: notebooks
// exported to HTML load RequireJS, which would otherwise capture echarts'
// module and leave the chart blank. The iframe is sandboxed to run scripts
// only. With a local script (ScriptFile or CONVLENS_ECHARTS_JS) every
// iframe carries its own copy, about 1 MB, so the notebook keeps working
// offline and after export.
func (c *Chart) IFrame() (string, error) {
	page, err := c.HTML()
	if err != nil {
		return "", err
	}
	w, h := c.size()
	title := c.title
	if title == "" {
		title = "chart"
	}
	return fmt.Sprintf(`<iframe srcdoc="%s" title="%s" width="%d" height="%d" style="border:0;max-width:100%%" sandbox="allow-scripts"></iframe>`,
		html.EscapeString(page), html.EscapeString(title), w+16, h+16), nil
}

// Show displays the chart in the running GoNB notebook cell, in an iframe
// (see IFrame). Outside a notebook it writes the whole page (HTML) to a new
// show-*.html file in the directory named by CONVLENS_DISPLAY_DIR
// (DisplayDirEnv), or returns ErrNotNotebook if that is unset.
func (c *Chart) Show() error {
	if isNotebook() {
		frag, err := c.IFrame()
		if err != nil {
			return err
		}
		return sendHTML(frag)
	}
	page, err := c.HTML()
	if err != nil {
		return err
	}
	return writeShowFile(".html", []byte(page))
}

// size returns the chart's size in pixels, defaults applied.
func (c *Chart) size() (w, h int) {
	w, h = c.width, c.height
	if c.kind == topKChart && h == 0 {
		n := min(max(c.k, 1), max(len(c.scores), 1))
		h = 120 + 36*n
	}
	return w, h
}

var scriptEnd = regexp.MustCompile(`(?i)</(script)`)

// scriptTag returns the <script> element that loads echarts.
func (c *Chart) scriptTag() (string, error) {
	file, url := c.scriptFile, c.scriptURL
	if file == "" && url == "" {
		file = os.Getenv(EChartsJSEnv)
	}
	if file == "" {
		if url == "" {
			url = DefaultEChartsURL
		}
		return fmt.Sprintf("<script src=\"%s\"></script>\n", html.EscapeString(url)), nil
	}
	js, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("display: reading echarts script: %w", err)
	}
	if len(strings.TrimSpace(string(js))) == 0 {
		return "", fmt.Errorf("display: echarts script %s is empty", file)
	}
	// "</script" would end the element early; in JavaScript "<\/" is the
	// same text inside strings, where it can occur.
	safe := scriptEnd.ReplaceAllString(string(js), `<\/$1`)
	return "<script>\n" + safe + "\n</script>\n", nil
}

// chartSnippet holds the element and script of a rendered chart.
type chartSnippet struct{ Element, Script string }

// snippet builds the go-echarts chart and renders its element and script.
func (c *Chart) snippet() (chartSnippet, error) {
	w, h := c.size()
	if w <= 0 || h <= 0 {
		return chartSnippet{}, fmt.Errorf("display: invalid chart size %dx%d", w, h)
	}
	var r render.Renderer
	var err error
	switch c.kind {
	case heatmapChart:
		r, err = c.heatmap()
	case topKChart:
		r, err = c.topK()
	case layerChart:
		r, err = c.layerLines()
	default:
		err = errors.New("display: unknown chart kind")
	}
	if err != nil {
		return chartSnippet{}, err
	}
	s, err := renderSnippet(r)
	if err != nil {
		return chartSnippet{}, err
	}
	// The option JSON inside the script holds user text (titles, class
	// names) unescaped; make sure none of it can close the element.
	const open, end = `<script type="text/javascript">`, `</script>`
	body, ok := strings.CutPrefix(strings.TrimSpace(s.Script), open)
	body, ok2 := strings.CutSuffix(body, end)
	if !ok || !ok2 {
		return chartSnippet{}, errors.New("display: unexpected script from go-echarts")
	}
	body = strings.ReplaceAll(body, "</", `<\/`)
	body = strings.ReplaceAll(body, "<!--", `<\!--`)
	return chartSnippet{Element: s.Element, Script: open + body + end}, nil
}

// renderSnippet calls go-echarts, which panics on template errors.
func renderSnippet(r render.Renderer) (s render.ChartSnippet, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("display: rendering chart: %v", p)
		}
	}()
	return r.RenderSnippet(), nil
}

// globalOpts returns the options every chart shares.
func (c *Chart) globalOpts() []charts.GlobalOpts {
	w, h := c.size()
	renderer := "canvas"
	if c.svg {
		renderer = "svg"
	}
	return []charts.GlobalOpts{
		charts.WithInitializationOpts(opts.Initialization{
			Width:    strconv.Itoa(w) + "px",
			Height:   strconv.Itoa(h) + "px",
			ChartID:  chartID,
			Renderer: renderer,
		}),
		charts.WithTitleOpts(opts.Title{Title: clean(c.title), Left: "center"}),
		charts.WithAnimation(false),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
	}
}

// clean removes go-echarts' marker for raw JavaScript ("__f__") from text
// that comes from the user, so that no label can become code.
func clean(s string) string { return strings.ReplaceAll(s, "__f__", "") }

// number formats v for the page with 4 significant digits.
func number(v float64) json.Number {
	return json.Number(strconv.FormatFloat(v, 'g', 4, 64))
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (c *Chart) heatmap() (render.Renderer, error) {
	m := c.m
	if err := m.Validate(); err != nil {
		return nil, err
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range m.Values {
		if f := float64(v); finite(f) {
			lo, hi = min(lo, f), max(hi, f)
		}
	}
	if lo > hi { // no finite value
		lo, hi = 0, 1
	}
	if lo == hi {
		lo, hi = lo-0.5, hi+0.5
	}
	xs := make([]string, m.Width)
	for i := range xs {
		xs[i] = strconv.Itoa(i)
	}
	ys := make([]string, m.Height)
	for i := range ys {
		ys[i] = strconv.Itoa(i)
	}
	data := make([]opts.HeatMapData, 0, len(m.Values))
	for y := 0; y < m.Height; y++ {
		for x := 0; x < m.Width; x++ {
			var v any = "-" // echarts' mark for a missing value
			if f := float64(m.At(x, y)); finite(f) {
				v = number(f)
			}
			data = append(data, opts.HeatMapData{Value: []any{x, y, v}})
		}
	}
	// Decimals to show values with: enough for 3 significant digits of the
	// range.
	precision := max(0, min(8, 2-int(math.Floor(math.Log10(hi-lo)))))
	colors := make([]string, 17)
	for i := range colors {
		col := c.cmap.At(float64(i) / float64(len(colors)-1))
		colors[i] = fmt.Sprintf("#%02x%02x%02x", col.R, col.G, col.B)
	}

	hm := charts.NewHeatMap()
	hm.SetGlobalOptions(c.globalOpts()...)
	hm.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{
			Show: opts.Bool(true),
			Formatter: opts.FuncOpts(`function (p) { var v = p.value;
				return 'column x = ' + v[0] + ', row y = ' + v[1] + '<br/>value = <b>' + v[2] + '</b>'; }`),
		}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Data: xs, Name: clean(c.xName),
			SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category", Data: ys, Name: clean(c.yName),
			NameLocation: "start", // the top, as the axis is inverted
			Inverse:      opts.Bool(true), AxisLabel: &opts.AxisLabel{Show: opts.Bool(true)},
			SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithGridOpts(opts.Grid{Left: "30", Right: "120", Top: "60", Bottom: "40",
			ContainLabel: opts.Bool(true)}),
		charts.WithVisualMapOpts(opts.VisualMap{
			Type:       "continuous",
			Calculable: opts.Bool(true),
			Orient:     "vertical",
			Right:      "10",
			Top:        "center",
			Min:        float32(lo),
			Max:        float32(hi),
			InRange:    &opts.VisualMapInRange{Color: colors},
		}),
	)
	// go-echarts drops a visualMap min or max of 0 (its fields are
	// "omitempty"), so set the range after the option.
	// Its handles show values with "precision" decimals, by default none.
	hm.AddJSFuncs(fmt.Sprintf("%%MY_ECHARTS%%.setOption({visualMap: {min: %s, max: %s, precision: %d}});",
		number(lo), number(hi), precision))
	var seriesOpts []charts.SeriesOpts
	if len(m.Values) <= 256 && m.Width <= 16 {
		// Values in the cells, with as many decimals as the scale: text, so
		// the map can be read without telling colours apart.
		seriesOpts = append(seriesOpts, charts.WithLabelOpts(opts.Label{
			Show: opts.Bool(true),
			Formatter: string(opts.FuncOpts(fmt.Sprintf(`function (p) { var v = p.value[2];
				return typeof v === 'number' ? v.toFixed(%d) : ''; }`, precision))),
		}))
	}
	hm.AddSeries("value", data, seriesOpts...)
	return hm, nil
}

func (c *Chart) topK() (render.Renderer, error) {
	if len(c.scores) == 0 {
		return nil, errors.New("display: TopKChart needs at least one score")
	}
	if c.labels != nil && len(c.labels) != len(c.scores) {
		return nil, fmt.Errorf("display: TopKChart has %d labels for %d scores", len(c.labels), len(c.scores))
	}
	if c.k < 1 {
		return nil, fmt.Errorf("display: TopKChart k = %d, want at least 1", c.k)
	}
	for i, s := range c.scores {
		if !finite(float64(s)) {
			return nil, fmt.Errorf("display: TopKChart score %d is %g", i, s)
		}
	}
	idx := make([]int, len(c.scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return c.scores[idx[a]] > c.scores[idx[b]] })
	idx = idx[:min(c.k, len(idx))]

	names := make([]string, len(idx))
	data := make([]opts.BarData, len(idx))
	for i, j := range idx {
		if c.labels != nil {
			names[i] = fmt.Sprintf("%s (%d)", clean(c.labels[j]), j)
		} else {
			names[i] = fmt.Sprintf("class %d", j)
		}
		data[i] = opts.BarData{Name: names[i], Value: number(float64(c.scores[j]))}
	}

	bar := charts.NewBar()
	bar.SetGlobalOptions(c.globalOpts()...)
	bar.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: clean(c.xName)}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category", Name: clean(c.yName),
			Inverse: opts.Bool(true), AxisLabel: &opts.AxisLabel{Show: opts.Bool(true)}}),
		charts.WithGridOpts(opts.Grid{Left: "20", Right: "70", Top: "50", Bottom: "40",
			ContainLabel: opts.Bool(true)}),
	)
	bar.SetXAxis(names)
	bar.XYReversal()
	bar.AddSeries("score", data, charts.WithLabelOpts(opts.Label{
		Show: opts.Bool(true), Position: "right", Color: "#1a1a1a", Formatter: "{c}",
	}))
	return bar, nil
}

// Marker shapes and dash styles of LayerChart series, in order.
var (
	seriesSymbols = []string{"circle", "rect", "triangle", "diamond", "pin", "arrow", "roundRect"}
	seriesDashes  = []string{"solid", "dashed", "dotted"}
)

func (c *Chart) layerLines() (render.Renderer, error) {
	if len(c.layers) == 0 {
		return nil, errors.New("display: LayerChart needs at least one layer")
	}
	if len(c.series) == 0 {
		return nil, errors.New("display: LayerChart needs at least one series")
	}
	names := make([]string, len(c.layers))
	for i, l := range c.layers {
		names[i] = clean(l)
	}
	line := charts.NewLine()
	line.SetGlobalOptions(c.globalOpts()...)
	rotate := 0.0
	if len(names) > 8 {
		rotate = 30
	}
	line.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "30"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: clean(c.xName),
			NameLocation: "middle", NameGap: 40,
			AxisLabel: &opts.AxisLabel{Show: opts.Bool(true), Rotate: rotate}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: clean(c.yName),
			AxisLabel: &opts.AxisLabel{Show: opts.Bool(true)}}),
		charts.WithGridOpts(opts.Grid{Left: "20", Right: "40", Top: "80", Bottom: "30",
			ContainLabel: opts.Bool(true)}),
	)
	line.SetXAxis(names)
	for i, s := range c.series {
		if len(s.Values) != len(c.layers) {
			return nil, fmt.Errorf("display: LayerChart series %q has %d values for %d layers",
				s.Name, len(s.Values), len(c.layers))
		}
		data := make([]opts.LineData, len(s.Values))
		for j, v := range s.Values {
			if finite(v) {
				data[j] = opts.LineData{Value: number(v)}
			} else {
				data[j] = opts.LineData{Value: "-"}
			}
		}
		line.AddSeries(clean(s.Name), data,
			charts.WithLineChartOpts(opts.LineChart{
				Symbol:     seriesSymbols[i%len(seriesSymbols)],
				SymbolSize: 10,
				ShowSymbol: opts.Bool(true),
			}),
			charts.WithLineStyleOpts(opts.LineStyle{Type: seriesDashes[i%len(seriesDashes)], Width: 2}),
			charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Position: "top", Formatter: "{c}"}),
		)
	}
	return line, nil
}
