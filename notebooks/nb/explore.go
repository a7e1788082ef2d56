package nb

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"image"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/janpfeifer/gonb/gonbui"
	"github.com/janpfeifer/gonb/gonbui/comms"
	"github.com/janpfeifer/gonb/gonbui/dom"
	"github.com/janpfeifer/gonb/gonbui/protocol"
	"github.com/janpfeifer/gonb/gonbui/widgets"
)

// Environment variables that steer an explorer.
const (
	// ExploreEnv set to "static" makes explorers draw their first state and
	// return at once, without looking for a front end (the notebook tests set
	// it: nbconvert runs no scripts).
	ExploreEnv = "CONVLENS_EXPLORE"
	// ExploreIdleEnv is how long an explorer waits for a control to change
	// before it stops and leaves its last state (a Go duration; default 30m).
	ExploreIdleEnv = "CONVLENS_EXPLORE_IDLE"
)

// DefaultExploreTopK is how many classes an explorer's chart and target
// list rank by probability.
const DefaultExploreTopK = 5

// An ExplorerBuilder configures an explorer; create one with [Explorer].
type ExplorerBuilder struct {
	m      models.Model
	images []namedImage
	layer  string
	method string
	cmap   string
	alpha  float64
	k      int
	probe  time.Duration
	// against: the evidence against the class first (Against).
	against bool
}

type namedImage struct {
	name string
	img  image.Image
}

// Explore puts an explorer of m in the cell: Explorer(m).Show().
func Explore(m models.Model) { Explorer(m).Show() }

// Explorer starts configuring an explorer of m: a picture of Grad-CAM on an
// image, with controls for everything it depends on:
//
//   - image: the images given with Image (by default the photograph, mirrored
//     too, and held-out samples of the embedded lesion and cell data sets),
//     or any file, by path;
//   - layer: every layer of m with spatial axes, by PyTorch module path where
//     the model records one (default: the last one, models.LastSpatialLayer);
//   - target: the K most probable classes with their probabilities, then
//     every class;
//   - evidence: for the class, or against it (gradcam.Counterfactual: the
//     regions that lower its score);
//   - method: every method of gradcam.MethodNames;
//   - colormap (display.ColormapNames) and opacity of the overlay.
//
// Changing a control recomputes and redraws, in place, the overlay, the
// top-K chart and the map's figures (layer, grid, class, logit, probability,
// where the map peaks, how much of it is positive evidence, the time taken).
// Compiled graphs are kept, one per layer and method: coming back to a
// layer costs one call of the model.
//
// Show runs until the Stop button is pressed, the kernel is interrupted, or
// no control changes for $CONVLENS_EXPLORE_IDLE (default 30 minutes); until
// then, later cells wait. It then leaves its last state in the notebook.
// Where no front end is listening (nbconvert, tests, a program outside a
// notebook) it draws its first state, says so, and returns.
func Explorer(m models.Model) *ExplorerBuilder {
	return &ExplorerBuilder{m: m, method: "gradcam", cmap: "jet", alpha: 0.5, k: DefaultExploreTopK, probe: 8 * time.Second}
}

// Image adds an image to the image control, under name. Without any, the
// explorer offers the defaults listed in Explorer.
func (b *ExplorerBuilder) Image(name string, img image.Image) *ExplorerBuilder {
	b.images = append(b.images, namedImage{name, img})
	return b
}

// Layer sets the layer shown first: a layer name or a module path.
func (b *ExplorerBuilder) Layer(name string) *ExplorerBuilder { b.layer = name; return b }

// Method sets the method shown first (a name from gradcam.MethodNames).
func (b *ExplorerBuilder) Method(name string) *ExplorerBuilder { b.method = name; return b }

// Colormap sets the colormap shown first (display.ColormapNames).
func (b *ExplorerBuilder) Colormap(name string) *ExplorerBuilder { b.cmap = name; return b }

// Opacity sets the heat map's weight in the overlay shown first, 0 to 1.
func (b *ExplorerBuilder) Opacity(a float64) *ExplorerBuilder { b.alpha = a; return b }

// TopK sets how many classes the chart and the target list rank.
func (b *ExplorerBuilder) TopK(k int) *ExplorerBuilder { b.k = k; return b }

// Against sets whether the evidence shown first is against the class
// (gradcam.Counterfactual) rather than for it.
func (b *ExplorerBuilder) Against(on bool) *ExplorerBuilder { b.against = on; return b }

// evidences are the evidence control's options: index 1 is against the class.
var evidences = []string{"for the class", "against the class"}

// explorer is a running explorer's state.
type explorer struct {
	m       models.Model
	r       *models.Runner
	images  []namedImage
	layers  []models.Layer
	methods []string
	cmaps   []string
	k       int

	// Current settings.
	img, layer, method, cmap, opacity int
	class                             int
	against                           bool        // the evidence against the class
	custom                            *namedImage // an image loaded by path, when chosen

	// Derived from the current image.
	x     *tensors.Tensor
	probs []float64
	order []int // classes by probability, best first

	cams   map[string]*gradcam.CAM
	last   *shown
	status string

	viewID, controlsID, rootID string
	live                       bool
}

// shown is what the view last drew, kept to redraw the overlay alone when
// only its colours change.
type shown struct {
	res     *gradcam.Result
	took    time.Duration
	compile bool
}

// Show builds the explorer and runs it (see Explorer).
func (b *ExplorerBuilder) Show() {
	e := b.build()
	e.live = gonbui.IsNotebook && os.Getenv(ExploreEnv) != "static" && frontEnd(b.probe)
	e.controlsID, e.viewID, e.rootID = newID("convlens_explorer_controls"), newID("convlens_explorer_view"), newID("convlens_explorer")
	e.setImage(e.img)
	if !e.live {
		e.explain()
		if e.status == "" {
			e.status = "A still picture of the explorer: no front end answered (nbconvert, or scripts off), so it shows no controls."
		}
		e.draw()
		e.summary()
		flush()
		return
	}
	e.run()
}

func (b *ExplorerBuilder) build() *explorer {
	if b.m == nil {
		stop(errors.New("nb.Explorer: the model is nil: open one with nb.Model or nb.Open"))
	}
	if b.k < 1 {
		stop(fmt.Errorf("nb.Explorer: TopK(%d): want at least 1", b.k))
	}
	if !(b.alpha >= 0 && b.alpha <= 1) {
		stop(fmt.Errorf("nb.Explorer: Opacity(%g): want 0 to 1", b.alpha))
	}
	e := &explorer{m: b.m, r: Runner(b.m), images: b.images, methods: gradcam.MethodNames(),
		cmaps: display.ColormapNames(), k: b.k, cams: map[string]*gradcam.CAM{}}
	if len(e.images) == 0 {
		e.images = defaultImages()
	}
	for _, l := range b.m.Layers() {
		if l.Spatial(b.m.Input().Layout) && l.Shape.DType.IsFloat() && !l.Local {
			e.layers = append(e.layers, l)
		}
	}
	if len(e.layers) == 0 {
		stop(fmt.Errorf("model %s has no layer with spatial axes to explain", b.m.Name()))
	}
	want := b.layer
	if want == "" {
		want = LastLayer(b.m)
	}
	l := Must(models.FindLayer(b.m, want))
	e.layer = -1
	for i, x := range e.layers {
		if x.Name == l.Name {
			e.layer = i
		}
	}
	if e.layer < 0 {
		stop(fmt.Errorf("layer %q of model %s has no spatial axes: pick one of those `convlens layers` lists with a grid", want, b.m.Name()))
	}
	e.method = index(e.methods, b.method, "method")
	e.cmap = index(e.cmaps, b.cmap, "colormap")
	e.opacity = int(b.alpha*100 + 0.5)
	e.against = b.against
	return e
}

func index(names []string, name, what string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	stop(fmt.Errorf("no %s %q; known: %s", what, name, strings.Join(names, ", ")))
	return 0
}

// defaultImages are the photograph, mirrored, and held-out samples of the
// embedded data sets.
func defaultImages() []namedImage {
	cat := Cat()
	out := []namedImage{{"the cat (chelsea.png)", cat}, {"the cat, mirrored", mirror(cat)}}
	if s, err := embedded.LesionSamples(2, false); err == nil {
		out = append(out, namedImage{fmt.Sprintf("skin lesion, held-out #1 (%s)", embedded.LesionsLabels()[s[1].Label]), s[1].Image})
	}
	if s, err := embedded.CellSamples(2); err == nil {
		for i, c := range s {
			out = append(out, namedImage{fmt.Sprintf("blood cell, held-out #%d (%s)", i, embedded.CellsLabels()[c.Label]), c.Image})
		}
	}
	return out
}

func mirror(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out.Set(b.Dx()-1-x, y, img.At(b.Min.X+x, b.Min.Y+y))
		}
	}
	return out
}

// frontEnd reports whether a notebook front end answers within timeout: it
// asks the page to send a value back through GoNB's channel to the browser.
func frontEnd(timeout time.Duration) bool {
	addr := "/convlens/probe/" + newID("p")
	ch := comms.Listen[int](addr)
	defer ch.Close()
	tries := int(timeout / (100 * time.Millisecond))
	dom.TransientJavascript(fmt.Sprintf(`(function () { var n = 0; (function f() {
  var c = globalThis.gonb_comm;
  if (c) { c.send(%q, 1); return; }
  if (++n < %d) { setTimeout(f, 100); }
})(); })();`, addr, tries))
	select {
	case <-ch.C:
		return true
	case <-time.After(timeout):
		return false
	}
}

// current returns the image chosen now.
func (e *explorer) current() namedImage {
	if e.custom != nil {
		return *e.custom
	}
	return e.images[e.img]
}

// setImage makes image i current (or the custom one when i < 0): its batch,
// probabilities and classes by probability; the target becomes its best class.
func (e *explorer) setImage(i int) {
	if i >= 0 {
		e.img, e.custom = i, nil
	}
	e.x = Input(e.m, e.current().img)
	p := Predict(e.r, e.x)[0]
	e.probs = p.Probs
	e.order = make([]int, len(p.Probs))
	for c := range e.order {
		e.order[c] = c
	}
	sortByProb(e.order, p.Probs)
	e.class = e.order[0]
}

func sortByProb(order []int, p []float64) {
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && p[order[j]] > p[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
}

// targets are the target control's options: the top K with probabilities,
// then every class; and the class each stands for.
func (e *explorer) targets() ([]string, []int) {
	labels := e.m.Labels()
	var names []string
	var classes []int
	for r, c := range e.order[:min(e.k, len(e.order))] {
		names = append(names, fmt.Sprintf("#%d %s (p %.3f)", r+1, Label(labels, c), e.probs[c]))
		classes = append(classes, c)
	}
	for c := range e.probs {
		names = append(names, fmt.Sprintf("%s: p %.3g", className(labels, c), e.probs[c]))
		classes = append(classes, c)
	}
	return names, classes
}

// evidence names what the map shows of the class called class.
func (e *explorer) evidence(class string) string {
	if e.against {
		return "the evidence against " + class
	}
	return class
}

// explain computes the map for the current settings, with the CAM of the
// layer and method kept from earlier calls.
func (e *explorer) explain() {
	layer, method := e.layers[e.layer].Name, e.methods[e.method]
	key := layer + "\x00" + method
	cam, ok := e.cams[key]
	if !ok {
		m := Must(gradcam.MethodByName(method))
		cam = Must(gradcam.New(e.r, layer).Method(m).Done())
		e.cams[key] = cam
	}
	start := time.Now()
	target := gradcam.Class(e.class)
	if e.against {
		target = gradcam.Counterfactual(target)
	}
	res, err := cam.Explain(e.x, target)
	if err != nil {
		e.status = "could not compute: " + err.Error()
		e.last = nil
		return
	}
	e.last = &shown{res: res, took: time.Since(start), compile: !ok}
	e.status = ""
}

var viewTmpl = template.Must(template.New("view").Parse(`<div class="convlens-explorer-view" id="{{.ID}}" data-state="{{.State}}">
<div style="display:flex;flex-wrap:wrap;gap:12px 24px;align-items:flex-start">
<figure style="margin:0;max-width:100%">
{{- if .Overlay}}<img class="convlens-explorer-overlay" src="{{.Overlay}}" width="{{.W}}" height="{{.H}}" alt="{{.Caption}}" style="max-width:100%;height:auto;image-rendering:auto">{{end -}}
<figcaption style="font-size:90%;max-width:{{.W}}px">{{.Caption}}</figcaption></figure>
<div style="flex:1 1 360px;max-width:480px">{{.Chart}}</div>
<div style="flex:0 1 auto">{{.Figures}}</div>
</div>
{{- if .Status}}<p class="convlens-explorer-status" style="color:#555;margin:0.4em 0">{{.Status}}</p>{{end}}
</div>`))

// overlaySide is the width the overlay is drawn at: large enough to see a
// 7x7 grid's cells, small enough to sit beside the chart.
const overlaySide = 320

// render draws the view for the current settings (computing the map) and
// puts it in the view's output, replacing the previous one.
func (e *explorer) render() {
	e.explain()
	e.draw()
}

// draw redraws the view from the last computed map.
func (e *explorer) draw() {
	img := e.current()
	base := Fit(img.img, overlaySide)
	labels := e.m.Labels()
	layer := e.layers[e.layer]
	state := map[string]any{"image": img.name, "layer": layer.Name, "module": layer.Module, "class": e.class,
		"method": e.methods[e.method], "colormap": e.cmaps[e.cmap], "opacity": float64(e.opacity) / 100, "against": e.against}
	stateJSON, _ := json.Marshal(state)
	var picture []byte
	var pictureType protocol.MIMEType
	var overlay template.URL
	figures := NewTable("", "").Title("the map")
	caption := fmt.Sprintf("%s: %s of %s at %s", img.name, e.methods[e.method], e.evidence(className(labels, e.class)), Short(e.m, layer.Name))
	if s := e.last; s != nil {
		res := s.res
		heat := Must(res.Map(0, 0))
		cm := Must(display.ColormapByName(e.cmaps[e.cmap]))
		pic := Must(display.Overlay(base, heat).Colormap(cm).Alpha(float64(e.opacity) / 100).Image())
		uri, mime, data := dataURI(pic)
		overlay, pictureType, picture = template.URL(uri), mime, data
		logit := Must(res.Score(0, 0))
		figures.Row("layer", Short(e.m, layer.Name))
		if layer.Module != "" {
			figures.Row("node", layer.Name)
		}
		if g, ok := layer.Grid(e.m.Input().Layout); ok {
			figures.Row("grid", fmt.Sprintf("%d×%d, %d channels", g.Height, g.Width, g.Channels))
		}
		figures.Row("class", fmt.Sprintf("%s, rank %d", className(labels, e.class), rank(e.order, e.class)))
		figures.Row("logit", formatFloat(float64(logit)))
		figures.Row("probability", formatFloat(e.probs[e.class]))
		if len(res.Raw) > 0 {
			raw := Must(res.RawMap(0, 0, 0))
			px, py, pos := peak(raw.Values, raw.Width)
			figures.Row("map peak", fmt.Sprintf("column %d, row %d of %d×%d", px, py, raw.Width, raw.Height))
			figures.Row("positive evidence", fmt.Sprintf("%d of %d positions", pos, len(raw.Values)))
		}
		took := fmt.Sprintf("%.2f s", s.took.Seconds())
		if s.compile {
			took += " (graph compiled for this layer and method)"
		} else {
			took += " (compiled graph reused)"
		}
		figures.Row("computed in", took)
	}
	chart := display.TopKChart(e.probs, labels, e.k).Title(fmt.Sprintf("top-%d classes (softmax probability)", e.k)).Size(460, 0)
	frag := Must(chart.NotebookHTML(newID("convlens_chart")))
	loadECharts()
	var out strings.Builder
	Check(viewTmpl.Execute(&out, struct {
		ID, State, Caption, Status string
		Overlay                    template.URL
		W, H                       int
		Chart, Figures             template.HTML
	}{
		ID: e.rootID + "_view", State: string(stateJSON), Caption: caption, Status: e.status, Overlay: overlay,
		W: base.Bounds().Dx(), H: base.Bounds().Dy(), Chart: template.HTML(frag), Figures: template.HTML(figures.html()),
	}))
	data := map[protocol.MIMEType]any{protocol.MIMETextHTML: out.String(), protocol.MIMETextPlain: caption + "\n" + figures.String()}
	if picture != nil {
		data[pictureType] = picture
	}
	if gonbui.IsNotebook {
		update(e.viewID, data)
	} else {
		publish(data, caption+"\n"+figures.String())
	}
}

// className is class c's name and index ("tabby (281)"), or "class 9"
// for a model without class names.
func className(labels []string, c int) string {
	if c >= 0 && c < len(labels) {
		return fmt.Sprintf("%s (%d)", labels[c], c)
	}
	return fmt.Sprintf("class %d", c)
}

func rank(order []int, c int) int {
	for i, x := range order {
		if x == c {
			return i + 1
		}
	}
	return 0
}

// peak returns where v (width w, row-major) is largest and how many values are positive.
func peak(v []float32, w int) (x, y, positive int) {
	best := 0
	for i, a := range v {
		if a > v[best] {
			best = i
		}
		if a > 0 {
			positive++
		}
	}
	return best % w, best / w, positive
}

// summary replaces the controls with a line that says what is shown and why
// there are no controls (no front end, or the explorer stopped).
func (e *explorer) summary() {
	layer := e.layers[e.layer]
	var b strings.Builder
	fmt.Fprintf(&b, "image %s · layer %s · %s · method %s · colormap %s · opacity %.2f",
		e.current().name, Short(e.m, layer.Name), e.evidence(className(e.m.Labels(), e.class)), e.methods[e.method], e.cmaps[e.cmap], float64(e.opacity)/100)
	text := b.String()
	note := "Explorer stopped; run the cell again to explore."
	if !e.live {
		note = "Interactive controls need a live notebook: run this cell in Jupyter (`make notebook`)."
	}
	h := fmt.Sprintf(`<div class="convlens-explorer-summary" style="color:#333">%s<br><span style="color:#666">%s</span></div>`,
		html.EscapeString(text), html.EscapeString(note))
	data := map[protocol.MIMEType]any{protocol.MIMETextHTML: h, protocol.MIMETextPlain: text + "\n" + note}
	if gonbui.IsNotebook {
		update(e.controlsID, data)
	} else {
		publish(data, text+"\n"+note)
	}
}

// controls are the running explorer's widgets.
type controls struct {
	events chan event
	stop   *widgets.ButtonBuilder
	target *widgets.SelectBuilder
	listen *comms.AddressChan[int] // the target control's changes
	gen    int                     // generation of the target control, which is rebuilt for each image
	root   string
}

type event struct {
	kind string
	i    int
	s    string
	gen  int
}

// run shows the controls and redraws on every change until stopped.
func (e *explorer) run() {
	e.render()
	c := &controls{events: make(chan event, 64), root: e.rootID}
	update(e.controlsID, map[protocol.MIMEType]any{protocol.MIMETextHTML: e.controlsHTML()})
	flush()
	ok := make(chan bool, 1)
	go func() { ok <- e.widgets(c) }()
	select {
	case good := <-ok:
		if !good {
			e.live = false
			e.summary()
			return
		}
	case <-time.After(20 * time.Second):
		e.live = false
		e.status = "the controls did not start (no answer from the page); showing the first state"
		e.draw()
		e.summary()
		flush()
		return
	}
	idle := 30 * time.Minute
	if d, err := time.ParseDuration(os.Getenv(ExploreIdleEnv)); err == nil && d > 0 {
		idle = d
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	stopped := make(chan int, 1)
	go func() {
		ch := c.stop.Listen()
		for v := range ch.C {
			if v > 0 {
				stopped <- v
				return
			}
		}
	}()
	timer := time.NewTimer(idle)
	for {
		var first event
		select {
		case first = <-c.events:
		case <-stopped:
			e.finish()
			return
		case <-sigs:
			e.finish()
			return
		case <-timer.C:
			e.status = fmt.Sprintf("stopped after %v without a change", idle)
			e.draw()
			e.finish()
			return
		}
		timer.Reset(idle)
		// Take every change that arrives within a moment (a slider being
		// dragged sends many), then draw once.
		pending := []event{first}
	drain:
		for {
			select {
			case ev := <-c.events:
				pending = append(pending, ev)
			case <-time.After(60 * time.Millisecond):
				break drain
			}
		}
		e.apply(c, pending)
	}
}

func (e *explorer) finish() {
	e.summary()
	flush()
}

// apply takes a batch of control changes and redraws what they change.
func (e *explorer) apply(c *controls, evs []event) {
	recompute, newImage := false, false
	for _, ev := range evs {
		switch ev.kind {
		case "image":
			if ev.i >= 0 && ev.i < len(e.images) && (ev.i != e.img || e.custom != nil) {
				e.img, e.custom, newImage = ev.i, nil, true
			}
		case "path":
			p := strings.TrimSpace(ev.s)
			if p == "" {
				continue
			}
			img, err := loadImage(p)
			if err != nil {
				e.status = "could not load " + p + ": " + err.Error()
				continue
			}
			e.custom, newImage = &namedImage{p, img}, true
		case "layer":
			if ev.i >= 0 && ev.i < len(e.layers) && ev.i != e.layer {
				e.layer, recompute = ev.i, true
			}
		case "method":
			if ev.i >= 0 && ev.i < len(e.methods) && ev.i != e.method {
				e.method, recompute = ev.i, true
			}
		case "target":
			if ev.gen != c.gen {
				continue // from the control of an earlier image
			}
			_, classes := e.targets()
			if ev.i >= 0 && ev.i < len(classes) && classes[ev.i] != e.class {
				e.class, recompute = classes[ev.i], true
			}
		case "evidence":
			if against := ev.i == 1; ev.i >= 0 && ev.i < len(evidences) && against != e.against {
				e.against, recompute = against, true
			}
		case "cmap":
			if ev.i >= 0 && ev.i < len(e.cmaps) {
				e.cmap = ev.i
			}
		case "opacity":
			e.opacity = max(0, min(100, ev.i))
		}
	}
	if newImage {
		e.status = ""
		i := e.img
		if e.custom != nil {
			i = -1
		}
		e.setImage(i)
		e.rebuildTarget(c)
		recompute = true
	}
	if recompute {
		e.explain()
	}
	e.draw()
	flush()
}

func loadImage(path string) (img image.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	if dir := os.Getenv(protocol.GONB_DIR_ENV); dir != "" && !strings.HasPrefix(path, "/") {
		if _, e := os.Stat(path); e != nil {
			path = dir + "/" + path
		}
	}
	return models.LoadImage(path)
}

// controlsHTML is the frame the widgets go into, each in its labelled slot.
func (e *explorer) controlsHTML() string {
	slot := func(name, label string) string {
		return fmt.Sprintf(`<label style="white-space:nowrap">%s <span id="%s_%s"></span></label>`, html.EscapeString(label), e.rootID, name)
	}
	return fmt.Sprintf(`<div class="convlens-explorer" id="%s" style="display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;margin:4px 0">%s</div>`,
		e.rootID, strings.Join([]string{
			slot("image", "image"), slot("path", "or file"), slot("layer", "layer"), slot("target", "target"), slot("evidence", "evidence"),
			slot("method", "method"), slot("cmap", "colormap"), slot("opacity", "opacity"), slot("stop", ""),
		}, ""))
}

// widgets creates the controls and forwards their changes as events; it
// reports false if a control could not be set up.
func (e *explorer) widgets(c *controls) bool {
	id := func(name string) string { return e.rootID + "_" + name }
	sel := func(name string, options []string, def int) {
		s := widgets.Select(escapeAll(options)).WithHtmlId(id(name) + "_select").SetDefault(def).AppendTo(id(name)).Done()
		forward(s.Listen(), c.events, name, 0)
	}
	var images []string
	for _, im := range e.images {
		images = append(images, im.name)
	}
	sel("image", images, e.img)
	var layers []string
	for _, l := range e.layers {
		layers = append(layers, layerOption(e.m, l))
	}
	sel("layer", layers, e.layer)
	e.rebuildTarget(c)
	sel("evidence", evidences, map[bool]int{false: 0, true: 1}[e.against])
	sel("method", e.methods, e.method)
	sel("cmap", e.cmaps, e.cmap)
	o := widgets.Slider(0, 100, e.opacity).WithHtmlId(id("opacity") + "_slider").AppendTo(id("opacity")).Done()
	forward(o.Listen(), c.events, "opacity", 0)
	c.stop = widgets.Button("Stop explorer").WithHtmlId(id("stop") + "_button").AppendTo(id("stop")).Done()
	// A text box for a path: a small widget of our own on GoNB's channel.
	addr := "/convlens/explorer/" + e.rootID + "/path"
	pathCh := comms.Listen[string](addr)
	go func() {
		for s := range pathCh.C {
			c.events <- event{kind: "path", s: s}
		}
	}()
	dom.Append(id("path"), fmt.Sprintf(`<input type="text" id="%s_input" size="28" placeholder="path to an image, then Enter">`, id("path")))
	dom.TransientJavascript(fmt.Sprintf(`(function () {
  var el = document.getElementById(%q);
  if (!el || !globalThis.gonb_comm) { return; }
  el.addEventListener("change", function () { globalThis.gonb_comm.send(%q, el.value); });
})();`, id("path")+"_input", addr))
	return gonbui.Error() == nil
}

// rebuildTarget replaces the target control with one for the current image.
func (e *explorer) rebuildTarget(c *controls) {
	if c.target != nil {
		c.listen.Close()
		dom.Remove(c.target.HtmlId())
	}
	c.gen++
	names, _ := e.targets()
	c.target = widgets.Select(escapeAll(names)).WithHtmlId(fmt.Sprintf("%s_target_select_%d", e.rootID, c.gen)).
		AppendTo(e.rootID + "_target").Done()
	c.listen = c.target.Listen()
	forward(c.listen, c.events, "target", c.gen)
}

func forward(ch *comms.AddressChan[int], events chan<- event, kind string, gen int) {
	go func() {
		for v := range ch.C {
			events <- event{kind: kind, i: v, gen: gen}
		}
	}()
}

// layerOption names a layer in the layer control: module path and node name
// where the model records a module, its grid.
func layerOption(m models.Model, l models.Layer) string {
	name := l.Name
	if l.Module != "" {
		name = l.Module + " — " + l.Name
	}
	if g, ok := l.Grid(m.Input().Layout); ok {
		name += fmt.Sprintf(" (%d×%d×%d)", g.Channels, g.Height, g.Width)
	}
	return name
}

func escapeAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = html.EscapeString(x)
	}
	return out
}
