package display

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/png"
	"os"
	"regexp"
	"strings"
)

// Charts inside a notebook page. Chart.IFrame isolates each chart in its own
// page with its own copy of echarts (about 1 MB each when inlined): safe, but
// a notebook with a few charts weighs megabytes, and the sanitiser of an
// untrusted notebook removes the iframes and leaves blank gaps. A notebook
// can instead load echarts once (EChartsScript) and insert each chart as a
// fragment of the page (Chart.NotebookHTML) that carries its own static
// picture (Chart.Image): the picture shows wherever scripts do not run, and
// the interactive chart replaces it where they do.

// NotebookHTML returns the chart as an HTML fragment for a notebook page:
// the chart's static picture (Image) as an <img>, and a script that, once
// echarts is in the page (see EChartsScript; it waits up to a minute for
// it), hides the picture and draws the interactive chart in its place. The
// fragment holds no copy of echarts. id names the chart's element and must be
// unique in the page: a letter or underscore, then letters, digits and
// underscores.
//
// The chart takes the width of the page up to its own width (Size), and
// follows the window when it is resized.
func (c *Chart) NotebookHTML(id string) (string, error) {
	if !chartIDPattern.MatchString(id) {
		return "", fmt.Errorf("display: chart id %q: want a letter or _, then letters, digits or _", id)
	}
	snip, err := c.snippet()
	if err != nil {
		return "", err
	}
	img, err := c.Image()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("display: encoding chart picture: %w", err)
	}
	const open, end = `<script type="text/javascript">`, `</script>`
	body := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(snip.Script), open), end)
	// go-echarts names the element and its variables after the chart's id,
	// which is fixed for one chart per page; give them this chart's id.
	body = strings.NewReplacer(
		"goecharts_"+chartID, "goecharts_"+id,
		"option_"+chartID, "option_"+id,
		"'"+chartID+"'", "'"+id+"'",
	).Replace(body)
	if c.kind == layerChart && c.xName != "" {
		// The axis name sits below the layer names: leave room for both, or
		// the canvas cuts the name off.
		body += fmt.Sprintf("\ngoecharts_%s.setOption({grid: [{bottom: 64}]});", id)
	}
	body += fmt.Sprintf("\nwindow.addEventListener('resize', function () { goecharts_%s.resize(); });", id)
	w, h := c.size()
	title := c.title
	if title == "" {
		title = "chart"
	}
	var out strings.Builder
	err = notebookChartTmpl.Execute(&out, struct {
		ID, Alt string
		W, H    int
		Src     template.URL
		Body    template.JS
	}{
		ID:   id,
		Alt:  title + " (static picture of the interactive chart)",
		W:    w,
		H:    h,
		Src:  template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())),
		Body: template.JS(body),
	})
	if err != nil {
		return "", fmt.Errorf("display: chart fragment: %w", err)
	}
	return out.String(), nil
}

var chartIDPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var notebookChartTmpl = template.Must(template.New("chart").Parse(
	`<div class="convlens-chart" data-chart="{{.ID}}" style="max-width:{{.W}}px">` +
		`<img id="{{.ID}}_static" class="convlens-chart-static" src="{{.Src}}" width="{{.W}}" height="{{.H}}" alt="{{.Alt}}" style="max-width:100%;height:auto">` +
		`<div id="{{.ID}}" class="convlens-chart-live" style="width:100%;height:{{.H}}px;display:none"></div>` +
		`</div>
<script>
(function () {
  var id = {{.ID}};
  function draw() {
    var el = document.getElementById(id);
    if (!el || el.getAttribute("data-drawn")) { return true; }
    if (!window.echarts || !window.echarts.init) { return false; }
    var still = document.getElementById(id + "_static");
    el.style.display = "block";
    if (still) { still.style.display = "none"; }
    el.setAttribute("data-drawn", "1");
    {{.Body}}
    return true;
  }
  if (!draw()) {
    var tries = 0;
    var timer = setInterval(function () { if (draw() || ++tries > 600) { clearInterval(timer); } }, 100);
  }
})();
</script>
`))

// EChartsScript returns a <script> element that makes echarts available to
// the page it is inserted into, for the charts of Chart.NotebookHTML: a
// notebook shows it once, before its first chart. The script is, as for
// chart pages, the file named by CONVLENS_ECHARTS_JS (EChartsJSEnv),
// inlined so that the notebook draws its charts offline and after export,
// or else loaded from DefaultEChartsURL. A page that already has echarts
// keeps it.
//
// Notebook pages (and their HTML exports) run RequireJS, which would capture
// echarts' module and leave window.echarts unset; the script hides
// RequireJS' define while echarts loads.
func EChartsScript() (string, error) {
	var out strings.Builder
	if os.Getenv(EChartsJSEnv) == "" {
		err := echartsURLTmpl.Execute(&out, DefaultEChartsURL)
		return out.String(), err
	}
	// A chart page's script element, inlined from the file (read, checked
	// and made safe to inline as for chart pages), is the script to wrap.
	tag, err := (&Chart{}).scriptTag()
	if err != nil {
		return "", err
	}
	js, ok := strings.CutPrefix(tag, "<script>\n")
	js, ok2 := strings.CutSuffix(js, "\n</script>\n")
	if !ok || !ok2 {
		return "", fmt.Errorf("display: unexpected echarts script element %.40q", tag)
	}
	err = echartsInlineTmpl.Execute(&out, template.JS(js))
	return out.String(), err
}

var echartsInlineTmpl = template.Must(template.New("echarts").Parse(`<script>
(function () {
  if (window.echarts && window.echarts.init) { return; }
  var amd = window.define;
  window.define = undefined;
  try {
{{.}}
  } finally {
    window.define = amd;
  }
})();
</script>
`))

var echartsURLTmpl = template.Must(template.New("echarts").Parse(`<script>
(function () {
  if ((window.echarts && window.echarts.init) || window.convlensEChartsLoading) { return; }
  window.convlensEChartsLoading = true;
  var amd = window.define;
  window.define = undefined;
  var s = document.createElement("script");
  s.src = {{.}};
  s.onload = s.onerror = function () { window.define = amd; window.convlensEChartsLoading = false; };
  document.head.appendChild(s);
})();
</script>
`))
