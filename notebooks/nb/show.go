package nb

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/heatmap"
	"github.com/janpfeifer/gonb/gonbui"
	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// HTML is an HTML fragment to show as it is.
type HTML string

// Show displays each item in the cell's output, in order, and returns once
// the notebook has them:
//
//   - a picture builder (anything with Image() (image.Image, error): Panel,
//     Rows, Overlay, Heatmap, the grids, PixelGrid, Colorbar) or an image.Image,
//     as a PNG (as a JPEG when that is much smaller: photographs);
//   - a *display.Chart, as its static picture, which the interactive chart
//     replaces where scripts run (untrusted notebooks, exports without
//     scripts and GitHub's viewer keep the picture);
//   - a *display.ReportBuilder, as the report's page in a frame;
//   - a heatmap.Map (coloured with Jet), heatmap.Tiles (a filter grid), a
//     *gradcam.Result (its maps, one tile per image and target);
//   - a *Table, as a table (and its text);
//   - HTML, as it is.
//
// A nil item is skipped; an error, or anything that cannot be drawn, stops
// the cell with its message.
func Show(items ...any) {
	for _, it := range items {
		show(it)
	}
	flush()
}

func show(it any) {
	switch v := it.(type) {
	case nil:
	case error:
		stop(v)
	case *display.Chart:
		showChart(v)
	case *display.ReportBuilder:
		publish(map[protocol.MIMEType]any{protocol.MIMETextHTML: Must(v.IFrame())}, "[report]")
	case *Table:
		publish(map[protocol.MIMEType]any{protocol.MIMETextHTML: v.html(), protocol.MIMETextPlain: v.String()}, v.String())
	case HTML:
		publish(map[protocol.MIMEType]any{protocol.MIMETextHTML: string(v)}, "")
	case heatmap.Map:
		showImage(Must(display.Heatmap(v).Size(fitSide(v.Width, v.Height)).Image()))
	case heatmap.Tiles:
		showImage(Must(display.TileGrid(v).Image()))
	case *gradcam.Result:
		showImage(Must(resultGrid(v).Image()))
	case interface{ Image() (image.Image, error) }:
		showImage(Must(v.Image()))
	case image.Image:
		showImage(v)
	default:
		stop(fmt.Errorf("nb.Show cannot show a %T: give it a picture builder, an image, a chart, a map, a table or a result", it))
	}
}

// fitSide sizes a small map for the page: about 320 pixels on its longer side.
func fitSide(w, h int) (int, int) {
	s := max(1, 320/max(w, h))
	return w * s, h * s
}

// resultGrid draws every map of a result as one tile, labelled with its
// image and class.
func resultGrid(r *gradcam.Result) *display.GridBuilder {
	var maps []heatmap.Map
	var labels []string
	for n := range r.N {
		for k := range r.K {
			maps = append(maps, Must(r.Map(n, k)))
			labels = append(labels, fmt.Sprintf("image %d, class %d", n, Must(r.Class(n, k))))
		}
	}
	return display.FilterGrid(maps...).Labels(labels...).Colormap(display.Jet).TileSize(160)
}

func showImage(img image.Image) {
	mime, data := encode(img)
	b := img.Bounds()
	publish(map[protocol.MIMEType]any{mime: data}, fmt.Sprintf("[picture %dx%d]", b.Dx(), b.Dy()))
}

// mimeJPEG is JPEG's MIME type, which Jupyter front ends and GitHub's
// notebook viewer show like PNG.
const mimeJPEG protocol.MIMEType = "image/jpeg"

// encode returns the picture as PNG, or as JPEG (quality 92) when that is
// less than a third of the PNG's size: photographs and panels made from them
// are several times smaller as JPEG, which keeps a notebook saved after a run
// small, while diagrams, grids of flat colours and text stay PNG, exact.
func encode(img image.Image) (protocol.MIMEType, []byte) {
	var p bytes.Buffer
	Check(png.Encode(&p, img))
	if b := img.Bounds(); b.Dx()*b.Dy() < 200*200 {
		return protocol.MIMEImagePNG, p.Bytes()
	}
	var j bytes.Buffer
	Check(jpeg.Encode(&j, img, &jpeg.Options{Quality: 92}))
	if 3*j.Len() < p.Len() {
		return mimeJPEG, j.Bytes()
	}
	return protocol.MIMEImagePNG, p.Bytes()
}

// dataURI returns the picture as a data: URI, encoded as encode does.
func dataURI(img image.Image) (string, protocol.MIMEType, []byte) {
	mime, data := encode(img)
	return "data:" + string(mime) + ";base64," + base64.StdEncoding.EncodeToString(data), mime, data
}

// showChart shows a chart: echarts first if this kernel has not sent it yet,
// then the chart with its picture, in one output holding both the page
// fragment and the PNG (front ends that do not render the HTML, such as an
// untrusted notebook, show the PNG).
func showChart(c *display.Chart) {
	loadECharts()
	frag := Must(c.NotebookHTML(newID("convlens_chart")))
	img := Must(c.Image())
	var buf bytes.Buffer
	Check(png.Encode(&buf, img))
	publish(map[protocol.MIMEType]any{protocol.MIMETextHTML: frag, protocol.MIMEImagePNG: buf.Bytes()}, "[chart]")
}

// echartsMarker is the file, in the kernel's temporary folder (one per
// kernel session), that records that echarts was sent to the notebook.
const echartsMarker = "convlens-echarts-sent"

// loadECharts sends echarts to the notebook once per kernel session.
func loadECharts() {
	dir := os.Getenv(protocol.GONB_TMP_DIR_ENV)
	marker := filepath.Join(dir, echartsMarker)
	if dir != "" {
		if _, err := os.Stat(marker); err == nil {
			return
		}
	}
	script := Must(display.EChartsScript())
	publish(map[protocol.MIMEType]any{
		protocol.MIMETextHTML: script + `<div class="convlens-echarts" style="display:none"></div>`,
	}, "")
	if dir != "" {
		_ = os.WriteFile(marker, []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644)
	}
}

var ids atomic.Int64

// newID returns an id unique in the notebook page: prefix, this program's
// start and a counter.
func newID(prefix string) string {
	return prefix + "_" + strconv.FormatInt(startID, 36) + "_" + strconv.FormatInt(ids.Add(1), 36)
}

var startID = time.Now().UnixNano()

// Hooks, replaced by tests: publish sends one output (a MIME bundle) to the
// notebook, or prints its text outside one; sync waits until the notebook has
// what was sent.
var (
	publish = func(data map[protocol.MIMEType]any, text string) {
		if !gonbui.IsNotebook {
			if text != "" {
				fmt.Println(text)
			}
			return
		}
		gonbui.SendData(&protocol.DisplayData{Data: data})
	}
	update = func(displayID string, data map[protocol.MIMEType]any) {
		if gonbui.IsNotebook {
			gonbui.SendData(&protocol.DisplayData{Data: data, DisplayID: displayID})
		}
	}
	flush = gonbui.Sync
)
