package audit

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"slices"

	"github.com/convlens/convlens/internal/parallel"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

// Settings say how every image of an audit is explained. They are the same
// for the single-process command and for every Beam worker.
type Settings struct {
	// ModelSHA256 identifies the model's weights (rows record it, and a
	// resumed run must have the same).
	ModelSHA256 string
	// Method is a gradcam method name (gradcam.Methods); "" means gradcam.
	Method string
	// Layer is a layer name or module path; "" means the last layer with
	// spatial axes.
	Layer string
	// Top is how many classes a row lists (default 5, at most the classes).
	Top int
	// Metrics are the faithfulness metrics computed per image (Metrics).
	Metrics []string
	// Regions are the named artefact regions measured besides the mask.
	Regions []NamedDir
	// Masks says that rows carry the "mask" region, even for images
	// whose record has no mask file.
	Masks bool
	// Batch is how many images go through the model per call (default 32).
	Batch int
}

// An Explainer turns records into rows: it loads each image and its
// masks, explains a batch at a time, and measures each map. It never fails
// on an image: what goes wrong with one becomes its row's Error.
type Explainer struct {
	s       Settings
	model   models.Model
	runner  *models.Runner
	cam     *gradcam.CAM
	method  gradcam.Method
	layer   string
	version string
}

// NewExplainer prepares the explanations of model m on backend b.
func NewExplainer(b compute.Backend, m models.Model, s Settings) (*Explainer, error) {
	if s.Method == "" {
		s.Method = "gradcam"
	}
	if s.Batch == 0 {
		s.Batch = 32
	}
	if s.Batch < 1 {
		return nil, fmt.Errorf("batch %d: it must be at least 1", s.Batch)
	}
	if s.Top == 0 {
		s.Top = 5
	}
	if s.Top < 1 {
		return nil, fmt.Errorf("top %d: it must be at least 1", s.Top)
	}
	if _, err := ParseMetrics(s.Metrics); err != nil {
		return nil, err
	}
	method, err := gradcam.MethodByName(s.Method)
	if err != nil {
		return nil, err
	}
	r := models.NewRunner(b, m)
	var layers []string
	if s.Layer != "" {
		layers = []string{s.Layer}
	}
	cam, err := gradcam.New(r, layers...).Method(method).Done()
	if err != nil {
		r.Close()
		return nil, err
	}
	layer := ""
	if l := cam.Layers(); len(l) > 0 {
		layer = l[0]
	}
	return &Explainer{s: s, model: m, runner: r, cam: cam, method: method, layer: layer, version: Version()}, nil
}

// Close frees the compiled graphs.
func (e *Explainer) Close() { e.runner.Close() }

// Layer is the layer the maps are computed at: the node a module path
// names, or the default layer.
func (e *Explainer) Layer() string { return e.layer }

// Identity is what the explainer's rows are made with.
func (e *Explainer) Identity() Identity {
	return Identity{ModelSHA256: e.s.ModelSHA256, Method: e.method.Name(), Layer: e.layer}
}

// Settings returns the settings with their defaults filled in.
func (e *Explainer) Settings() Settings { return e.s }

// loaded is one record read from disk.
type loaded struct {
	rec     Record
	data    []float32    // the image preprocessed for the model
	regions []regionMask // in row order: mask, then Settings.Regions
	err     error
}

type regionMask struct {
	name    string
	present bool
	mask    []bool // at the model's input size
}

// Explain returns one row per record, in order.
func (e *Explainer) Explain(recs []Record) []Row { return e.ExplainLoaded(e.Load(recs)) }

// Loaded are records read from disk, ready for [Explainer.ExplainLoaded].
type Loaded []loaded

// Load reads the records' images and masks, on GOMAXPROCS goroutines.
func (e *Explainer) Load(recs []Record) Loaded {
	items := make([]loaded, len(recs))
	parallel.For(len(recs), func(i int) { items[i] = e.load(recs[i]) })
	return items
}

// ExplainLoaded returns one row per loaded record, in order.
func (e *Explainer) ExplainLoaded(items Loaded) []Row {
	rows := make([]Row, len(items))
	var ok []int
	for i, it := range items {
		rows[i] = e.baseRow(it.rec)
		if it.err != nil {
			rows[i].Error = ptr(it.err.Error())
			continue
		}
		ok = append(ok, i)
	}
	for start := 0; start < len(ok); start += e.s.Batch {
		e.explainBatch(items, rows, ok[start:min(start+e.s.Batch, len(ok))])
	}
	return rows
}

func (e *Explainer) baseRow(rec Record) Row {
	r := Row{ID: rec.ID, Path: rec.Path, ModelSHA256: e.s.ModelSHA256, Method: e.method.Name(), Layer: e.layer, Version: e.version}
	if rec.Label >= 0 {
		r.Label = ptr(int32(rec.Label))
	}
	return r
}

// load reads a record's image and masks, checking their sizes.
func (e *Explainer) load(rec Record) loaded {
	it := loaded{rec: rec}
	img, err := models.LoadImage(rec.Path)
	if err != nil {
		it.err = err
		return it
	}
	in := e.model.Input()
	b := img.Bounds()
	if !in.AnySize && (b.Dx() != in.Width || b.Dy() != in.Height) {
		it.err = fmt.Errorf("image is %d×%d pixels; the model takes %d×%d (a fixed-size model: resize the archive to its size first)", b.Dx(), b.Dy(), in.Width, in.Height)
		return it
	}
	x, err := in.Tensor(img)
	if err != nil {
		it.err = err
		return it
	}
	it.data = tensors.MustCopyFlatData[float32](x)
	x.FinalizeAll()
	if e.s.Masks {
		m, err := loadMask(rec.Mask, b, in.Width, in.Height)
		if err != nil {
			it.err = fmt.Errorf("mask: %w", err)
			return it
		}
		m.name = MaskRegion
		it.regions = append(it.regions, m)
	}
	for _, r := range e.s.Regions {
		m, err := loadMask(RegionPath(r, rec.ID), b, in.Width, in.Height)
		if err != nil {
			it.err = fmt.Errorf("region %s: %w", r.Name, err)
			return it
		}
		m.name = r.Name
		it.regions = append(it.regions, m)
	}
	return it
}

// loadMask reads a mask (non-zero pixels inside) of an image with bounds b
// and samples it at w×h, the maps' size (nearest pixel centre). A missing
// file, or one that marks no pixel, is an absent region.
func loadMask(path string, b image.Rectangle, w, h int) (regionMask, error) {
	if path == "" {
		return regionMask{}, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return regionMask{}, nil
	}
	img, err := models.LoadImage(path)
	if err != nil {
		return regionMask{}, err
	}
	mb := img.Bounds()
	if mb.Dx() != b.Dx() || mb.Dy() != b.Dy() {
		return regionMask{}, fmt.Errorf("%s is %d×%d pixels, its image %d×%d", path, mb.Dx(), mb.Dy(), b.Dx(), b.Dy())
	}
	m := regionMask{mask: make([]bool, w*h)}
	for y := range h {
		sy := mb.Min.Y + (2*y+1)*mb.Dy()/(2*h)
		for x := range w {
			sx := mb.Min.X + (2*x+1)*mb.Dx()/(2*w)
			r, g, bl, _ := img.At(sx, sy).RGBA()
			if r|g|bl != 0 {
				m.mask[y*w+x] = true
				m.present = true
			}
		}
	}
	return m, nil
}

// explainBatch explains the images idx of items (at most one batch) and
// fills their rows. When the batch fails, each image is explained alone,
// so that only the images at fault become error rows.
func (e *Explainer) explainBatch(items []loaded, rows []Row, idx []int) {
	res, err := e.explain(items, idx)
	if err != nil {
		if len(idx) == 1 {
			rows[idx[0]].Error = ptr(err.Error())
			return
		}
		for _, i := range idx {
			e.explainBatch(items, rows, []int{i})
		}
		return
	}
	for n, i := range idx {
		if err := e.fill(&rows[i], items[i], res, n); err != nil {
			rows[i] = e.baseRow(items[i].rec)
			rows[i].Error = ptr(err.Error())
		}
	}
}

// explain runs the CAM on the images idx, padded to a whole batch with
// copies of the first so that every call has the same shape (one compiled
// graph); each image's results depend on that image alone.
func (e *Explainer) explain(items []loaded, idx []int) (res *gradcam.Result, err error) {
	size := len(items[idx[0]].data)
	data := make([]float32, 0, e.s.Batch*size)
	for _, i := range idx {
		data = append(data, items[i].data...)
	}
	for n := len(idx); n < e.s.Batch; n++ {
		data = append(data, items[idx[0]].data...)
	}
	x := tensors.FromFlatDataAndDimensions(data, e.model.Input().Shape(e.s.Batch)...)
	defer x.FinalizeAll()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("explaining: %v", p)
		}
	}()
	return e.cam.Explain(x, gradcam.Top(1))
}

// fill writes image n of res into row.
func (e *Explainer) fill(row *Row, it loaded, res *gradcam.Result, n int) error {
	logits := res.Logits[n*res.NumClasses : (n+1)*res.NumClasses]
	heat, err := res.Map(n, 0)
	if err != nil {
		return err
	}
	raw, err := res.RawMap(0, n, 0)
	if err != nil {
		return err
	}
	for _, c := range []struct {
		what string
		vs   []float32
	}{{"logits", logits}, {"map", heat.Values}, {"layer's map", raw.Values}} {
		if !finite(c.vs) {
			return fmt.Errorf("the %s hold NaN or infinite values", c.what)
		}
	}
	probs, err := models.Softmax(logits)
	if err != nil {
		return err
	}
	pred, _, err := res.Predicted(n)
	if err != nil {
		return err
	}
	row.Predicted = ptr(int32(pred))
	row.Probability = ptr(probs[pred])
	name := ""
	if labels := e.model.Labels(); pred < len(labels) {
		name = labels[pred]
	}
	row.PredictedName = ptr(name)
	for _, c := range topK(probs, e.s.Top) {
		row.TopClasses = append(row.TopClasses, int32(c))
		row.TopProbabilities = append(row.TopProbabilities, probs[c])
	}
	explained, err := res.Class(n, 0)
	if err != nil {
		return err
	}
	row.Explained = ptr(int32(explained))
	row.MapHeight, row.MapWidth = int32(raw.Height), int32(raw.Width)
	row.Map = slices.Clone(raw.Values)
	for _, r := range it.regions {
		reg := Region{Name: r.name, Present: r.present}
		if r.present {
			hit, err := metrics.PointingHit(heat, r.mask)
			if err != nil {
				return fmt.Errorf("region %s: %w", r.name, err)
			}
			energy, err := metrics.EnergyFraction(heat, r.mask)
			if err != nil {
				return fmt.Errorf("region %s: %w", r.name, err)
			}
			reg.PointingHit, reg.EnergyInside = ptr(hit), ptr(energy)
		}
		row.Regions = append(row.Regions, reg)
	}
	if len(e.s.Metrics) > 0 {
		if err := e.faithfulness(row, it, heat.Values, explained); err != nil {
			return err
		}
	}
	return nil
}

// faithfulness computes the metrics of one image alone, seeded by its id,
// so that they do not depend on the batch or the order of the run.
func (e *Explainer) faithfulness(row *Row, it loaded, heat []float32, class int) error {
	x := tensors.FromFlatDataAndDimensions(slices.Clone(it.data), e.model.Input().Shape(1)...)
	defer x.FinalizeAll()
	ev, err := metrics.New(e.runner, metrics.Options{Seed: Seed(it.rec.ID)})
	if err != nil {
		return err
	}
	maps, classes := [][]float32{heat}, []int{class}
	for _, m := range e.s.Metrics {
		switch m {
		case MetricROAD:
			r, err := ev.ROAD(x, maps, classes)
			if err != nil {
				return fmt.Errorf("ROAD: %w", err)
			}
			row.ROADGap = ptr(r.Gap)
		case MetricDrop:
			c, err := ev.Confidence(x, maps, classes)
			if err != nil {
				return fmt.Errorf("drop: %w", err)
			}
			row.Drop = ptr(c.Drop[0])
		}
	}
	return nil
}

// Seed is the seed of an image's random draws (ROAD's noise): from its id.
func Seed(id string) uint64 {
	h := sha256.Sum256([]byte(id))
	return binary.LittleEndian.Uint64(h[:8])
}

// topK returns the indices of the k largest probabilities, best first
// (ties: lower index first).
func topK(p []float64, k int) []int {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(p[b], p[a]) })
	return idx[:min(k, len(idx))]
}

func finite(vs []float32) bool {
	for _, v := range vs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }
