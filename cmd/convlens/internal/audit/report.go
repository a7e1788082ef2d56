package audit

import (
	"cmp"
	"fmt"
	"image"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/atomicfile"
	"github.com/convlens/convlens/models"
)

// ReportInfo is what a cohort report states about how it was made.
type ReportInfo struct {
	// Model names the model; Checksum and ChecksumOf identify its weights.
	Model, Checksum, ChecksumOf string
	// Labels are the model's class names (for the case pages' tables).
	Labels []string
	// Images is the archive as given to --images.
	Images string
	// Date of the report.
	Date time.Time
}

// GalleryCases is the most cases a gallery shows.
const GalleryCases = 12

// CasesPath is the file of the case pages beside a report: REPORT-cases.html.
func CasesPath(report string) string {
	ext := filepath.Ext(report)
	return strings.TrimSuffix(report, ext) + "-cases" + ext
}

// gallery is a gallery being gathered: which rows it wants, and the worst.
type gallery struct {
	title, note string
	score       func(r *Row) (float64, bool)
	worst       worst
}

// WriteReport reads a results file and stages, in out, the cohort report
// at path and the worst cases' pages beside it (CasesPath), in the
// single-image report's format. It reads the file twice, a row group at a
// time: memory is the figures, the galleries' cases and their images.
func WriteReport(out *atomicfile.Set, results, path string, info ReportInfo) (pages int, err error) {
	var all Stats
	perClass := map[string]*Stats{}
	var classOrder []string
	var regions []string
	var meta Row
	labelled := false
	var errorsSeen [][]string
	// First pass: which regions and labels the rows have.
	if err := ReadRows(results, func(r Row) error {
		if r.Label != nil {
			labelled = true
		}
		for _, g := range r.Regions {
			if !slices.Contains(regions, g.Name) {
				regions = append(regions, g.Name)
			}
		}
		if meta.Method == "" {
			meta = Row{Method: r.Method, Layer: r.Layer, ModelSHA256: r.ModelSHA256, Version: r.Version}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	className := func(c int32) string {
		if int(c) < len(info.Labels) {
			return info.Labels[c]
		}
		return fmt.Sprintf("class %d", c)
	}
	galleries := makeGalleries(regions, info.Labels, labelled)
	if err := ReadRows(results, func(r Row) error {
		all.Add(&r)
		if !r.OK() {
			if len(errorsSeen) < 50 {
				errorsSeen = append(errorsSeen, []string{r.ID, *r.Error})
			}
			return nil
		}
		key := className(*r.Predicted)
		if labelled && r.Label != nil {
			key = className(*r.Label)
		}
		st := perClass[key]
		if st == nil {
			st = &Stats{}
			perClass[key] = st
			classOrder = append(classOrder, key)
		}
		st.Add(&r)
		for _, g := range galleries {
			if s, ok := g.score(&r); ok {
				g.worst.add(Case{ID: r.ID, Path: r.Path, Score: s, Shown: math.Abs(s)})
			}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	all.Finish()
	slices.Sort(classOrder)
	for _, k := range classOrder {
		perClass[k].Finish()
	}

	// The case pages: every gallery's cases, once each, in gallery order.
	var caseIDs []string
	for _, g := range galleries {
		for _, c := range g.worst.cases {
			if !slices.Contains(caseIDs, c.ID) {
				caseIDs = append(caseIDs, c.ID)
			}
		}
	}
	caseRows := map[string]Row{}
	if len(caseIDs) > 0 {
		if err := ReadRows(results, func(r Row) error {
			if slices.Contains(caseIDs, r.ID) {
				caseRows[r.ID] = r
			}
			return nil
		}); err != nil {
			return 0, err
		}
	}
	casesFile := CasesPath(path)
	link := func(id string) string {
		return filepath.Base(casesFile) + fmt.Sprintf("#page-%d", slices.Index(caseIDs, id)+1)
	}
	var reportPages []display.ReportPage
	pictures := map[string]image.Image{}
	for _, id := range caseIDs {
		r := caseRows[id]
		img, err := models.LoadImage(r.Path)
		if err != nil {
			return 0, fmt.Errorf("report: case %s: %w", id, err)
		}
		pictures[id] = img
		reportPages = append(reportPages, casePage(&r, img, info.Labels))
	}

	b := display.Cohort(display.CohortInfo{
		Title: "Audit of " + orNone(info.Images, "an image archive"),
		Facts: [][2]string{
			{"Model", info.Model},
			{"Weights", info.Checksum + " (" + info.ChecksumOf + ")"},
			{"Method", meta.Method},
			{"Layer", meta.Layer},
			{"Images", fmt.Sprintf("%d, of which %d could not be explained (error rows)", all.Images, all.Errors)},
			{"Results", filepath.Base(results)},
			{"Software", "convlens " + orNone(meta.Version, Version())},
		},
		Note: reportNote,
		Date: info.Date,
	}).Figures(figures(&all, labelled)...)
	if len(classOrder) > 0 {
		b.Table(classTable(classOrder, perClass, regions, labelled))
	}
	if len(errorsSeen) > 0 {
		b.Table(display.CohortTable{Caption: "Images that could not be explained", Header: []string{"image", "why"},
			Rows: errorsSeen, Note: fmt.Sprintf("%d error row(s) in all; the first %d are listed.", all.Errors, len(errorsSeen))})
	}
	for _, name := range regions {
		rs := all.Region(name)
		if rs == nil || rs.Energy.N == 0 {
			continue
		}
		b.Chart(display.CohortChart{Title: fmt.Sprintf("Share of each map's energy inside the %s (%d images)", regionTitle(name), rs.Energy.N),
			XLabel: "share of energy inside", Labels: binLabels(), Counts: rs.Hist[:]})
	}
	b.Chart(display.CohortChart{Title: fmt.Sprintf("Probability of the prediction (%d images)", all.Images-all.Errors),
		XLabel: "probability", Labels: binLabels(), Counts: all.Confidence[:]})
	for _, g := range galleries {
		cg := display.CohortGallery{Title: g.title, Note: g.note}
		for _, c := range g.worst.cases {
			r := caseRows[c.ID]
			cg.Cases = append(cg.Cases, display.CohortCase{Image: pictures[c.ID], Map: displayMap(&r),
				Caption: fmt.Sprintf("%s: %s %.0f%%, %.2f", c.ID, r.predictedName(info.Labels), 100**r.Probability, c.Shown),
				Link:    link(c.ID)})
		}
		b.Gallery(cg)
	}
	page, err := b.HTML()
	if err != nil {
		return 0, err
	}
	if err := out.Write(path, func(w io.Writer) error { _, err := io.WriteString(w, page); return err }); err != nil {
		return 0, err
	}
	cases := "<!DOCTYPE html><html><body><p>No case pages: the galleries are empty.</p></body></html>\n"
	if len(reportPages) > 0 {
		rinfo := display.ReportInfo{Model: info.Model, Checksum: info.Checksum, ChecksumOf: info.ChecksumOf,
			Method: meta.Method, Layers: []string{meta.Layer}, Date: info.Date}
		if cases, err = display.Report(rinfo, reportPages...).HTML(); err != nil {
			return 0, err
		}
	}
	if err := out.Write(casesFile, func(w io.Writer) error { _, err := io.WriteString(w, cases); return err }); err != nil {
		return 0, err
	}
	return len(reportPages), nil
}

const reportNote = `What these figures show: for each image, where the heat map put the model's evidence, measured against the
regions given with the archive (the ground-truth mask, and named artefacts such as a ruler). The pointing game counts
the images whose strongest point lies inside a region; the energy is the share of the whole map that falls inside it.
Intervals are 95% confidence intervals (Wilson for shares of images, normal approximation for means). They describe
this archive with this model; they do not show that a prediction is right, and a map can be coarse. Each gallery
picture links to its page in the single-image report (the file ending in -cases.html beside this one).`

// makeGalleries lists the galleries of the worst cases a report shows.
func makeGalleries(regions, labels []string, labelled bool) []*gallery {
	var gs []*gallery
	for _, name := range regions {
		if name == MaskRegion {
			continue
		}
		classes := labels
		if len(classes) == 0 {
			classes = []string{""}
		}
		for ci, cname := range classes {
			ci, name := int32(ci), name
			title := fmt.Sprintf("Evidence mostly on the %s", name)
			if cname != "" {
				title = fmt.Sprintf("Predicted %s, evidence mostly on the %s", cname, name)
			}
			gs = append(gs, &gallery{title: title,
				note: fmt.Sprintf("Images with more than %.0f%% of the map's energy inside the %s region; the number is that share.", 100*Mostly, name),
				score: func(r *Row) (float64, bool) {
					g := r.Region(name)
					if g == nil || g.EnergyInside == nil || *g.EnergyInside <= Mostly || (cname != "" && *r.Predicted != ci) {
						return 0, false
					}
					return *g.EnergyInside, true
				}, worst: worst{k: GalleryCases}})
		}
	}
	if slices.Contains(regions, MaskRegion) {
		gs = append(gs, &gallery{title: "Evidence off the ground truth",
			note: "The images with the least of the map's energy inside their mask; the number is that share.",
			score: func(r *Row) (float64, bool) {
				g := r.Region(MaskRegion)
				if g == nil || g.EnergyInside == nil {
					return 0, false
				}
				return -*g.EnergyInside, true
			}, worst: worst{k: GalleryCases}})
	}
	if labelled {
		gs = append(gs, &gallery{title: "Wrong, with the highest confidence",
			note: "Images whose prediction differs from their label, most confident first; the number is the probability.",
			score: func(r *Row) (float64, bool) {
				if r.Label == nil || *r.Label == *r.Predicted {
					return 0, false
				}
				return *r.Probability, true
			}, worst: worst{k: GalleryCases}})
	}
	return gs
}

// figures are the cohort's figures with their intervals.
func figures(s *Stats, labelled bool) []display.CohortFigure {
	var f []display.CohortFigure
	if labelled && s.Accuracy.N > 0 {
		f = append(f, propFigure("Accuracy", s.Accuracy, "share of labelled images whose prediction is their label"))
	}
	for _, r := range s.Regions {
		if r.Energy.N == 0 {
			continue
		}
		t := regionTitle(r.Name)
		f = append(f,
			propFigure("Pointing game: "+t, r.Pointing, "share of maps whose strongest point lies inside the "+t),
			meanFigure("Energy inside the "+t, r.Energy, "mean share of each map's energy inside the "+t),
			propFigure("Evidence mostly on the "+t, r.Mostly, fmt.Sprintf("share of maps with more than %.0f%% of their energy inside the %s", 100*Mostly, t)))
	}
	if s.ROAD.N > 0 {
		f = append(f, meanFigure("ROAD gap", s.ROAD, "score with the least relevant pixels removed minus with the most relevant removed; higher is more faithful, 0 for a random map"))
	}
	if s.Drop.N > 0 {
		f = append(f, meanFigure("Average drop (%)", s.Drop, "drop in confidence when the image is multiplied by its map; lower is more faithful"))
	}
	return f
}

func regionTitle(name string) string {
	if name == MaskRegion {
		return "ground-truth mask"
	}
	return name
}

func propFigure(name string, p Proportion, note string) display.CohortFigure {
	return display.CohortFigure{Name: name, Value: pct(p.Value()), Interval: fmt.Sprintf("%s – %s", pct(p.Lo), pct(p.Hi)),
		N: fmt.Sprintf("%d of %d", p.K, p.N), Note: note}
}

func meanFigure(name string, m Mean, note string) display.CohortFigure {
	iv := ""
	if !math.IsNaN(m.Lo) {
		iv = fmt.Sprintf("%.3f – %.3f", m.Lo, m.Hi)
	}
	return display.CohortFigure{Name: name, Value: fmt.Sprintf("%.3f", m.Value), Interval: iv, N: fmt.Sprintf("%d images", m.N), Note: note}
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// classTable is the per-class breakdown.
func classTable(order []string, per map[string]*Stats, regions []string, labelled bool) display.CohortTable {
	by := "predicted class"
	if labelled {
		by = "true class"
	}
	t := display.CohortTable{Caption: "By " + by, Header: []string{by, "images"}}
	if labelled {
		t.Header = append(t.Header, "accuracy")
	}
	for _, name := range regions {
		t.Header = append(t.Header, "pointing: "+regionTitle(name), "energy: "+regionTitle(name))
	}
	for _, k := range order {
		s := per[k]
		row := []string{k, fmt.Sprint(s.Images)}
		if labelled {
			row = append(row, fmt.Sprintf("%s (%s – %s)", pct(s.Accuracy.Value()), pct(s.Accuracy.Lo), pct(s.Accuracy.Hi)))
		}
		for _, name := range regions {
			r := s.Region(name)
			if r == nil || r.Energy.N == 0 {
				row = append(row, "–", "–")
				continue
			}
			row = append(row, fmt.Sprintf("%s (%d)", pct(r.Pointing.Value()), r.Pointing.N), fmt.Sprintf("%.3f", r.Energy.Value))
		}
		t.Rows = append(t.Rows, row)
	}
	t.Note = "Shares with their 95% interval; a region's figures are over the images that have it (their number in brackets)."
	return t
}

func binLabels() []string {
	l := make([]string, 10)
	for i := range l {
		l[i] = fmt.Sprintf("%.1f", float64(i)/10)
	}
	return l
}

// displayMap is a row's map for drawing: its ReLU, scaled to [0, 1].
func displayMap(r *Row) heatmap.Map {
	vals := make([]float32, len(r.Map))
	for i, v := range r.Map {
		vals[i] = max(v, 0)
	}
	return heatmap.Map{Width: int(r.MapWidth), Height: int(r.MapHeight), Values: vals}.Normalized()
}

// casePage is a row's page in the single-image report.
func casePage(r *Row, img image.Image, labels []string) display.ReportPage {
	p := display.ReportPage{Title: r.ID, Image: img, Map: displayMap(r)}
	for i, c := range r.TopClasses {
		rc := display.ReportClass{Index: int(c), Probability: r.TopProbabilities[i]}
		if int(c) < len(labels) {
			rc.Label = labels[c]
		}
		p.Top = append(p.Top, rc)
	}
	return p
}

func (r *Row) predictedName(labels []string) string {
	if r.PredictedName != nil && *r.PredictedName != "" {
		return *r.PredictedName
	}
	return fmt.Sprintf("class %d", *r.Predicted)
}

func orNone(s, def string) string { return cmp.Or(s, def) }
