package nb

// The review of a skin-lesion model that 04-clinical-review.ipynb runs:
// Grad-CAM of the predicted class on held-out images with masks, the
// figures of evaluation, captions and pictures. Every cell of that notebook
// starts from ReviewLesions, so any of them runs first after a restart.

import (
	"fmt"
	"image"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
)

// LesionImages is how many held-out images the review measures (`convlens eval lesions` uses 500).
const LesionImages = 64

// Truth draws the ground truth as a picture: the lesion's mask white, the ruler's band grey.
func Truth(s embedded.Sample) image.Image {
	g := image.NewGray(s.Image.Bounds())
	for i := range s.Mask {
		switch {
		case s.Mask[i]:
			g.Pix[i] = 255
		case s.Ruler != nil && s.Ruler[i]:
			g.Pix[i] = 110
		}
	}
	return g
}

// LesionReview is one model's Grad-CAM of the predicted class, at embedded.LesionsGradCAMLayer, on a set of images.
type LesionReview struct {
	Model   *models.Native
	Samples []embedded.Sample
	Res     *gradcam.Result
}

// ReviewLesions explains the samples with m (embedded.Lesions or embedded.LesionsShortcut).
func ReviewLesions(m *models.Native, samples []embedded.Sample) *LesionReview {
	imgs := make([]image.Image, len(samples))
	for i, s := range samples {
		imgs[i] = s.Image
	}
	res := Must(gradcam.New(Runner(m), embedded.LesionsGradCAMLayer).Explain(Input(m, imgs...), gradcam.Top(1)))
	return &LesionReview{m, samples, res}
}

// Label is the name of class c.
func (e *LesionReview) Label(c int) string { return Label(e.Model.Labels(), c) }

// Predicted is image i's predicted class.
func (e *LesionReview) Predicted(i int) int {
	c, _, err := e.Res.Predicted(i)
	Check(err)
	return c
}

// Heat is image i's map; Hit and Energy compare it with the lesion's mask.
func (e *LesionReview) Heat(i int) heatmap.Map { return Must(e.Res.Map(i, 0)) }
func (e *LesionReview) Hit(i int) bool {
	return Must(metrics.PointingHit(e.Heat(i), e.Samples[i].Mask))
}
func (e *LesionReview) Energy(i int) float64 {
	return Must(metrics.EnergyFraction(e.Heat(i), e.Samples[i].Mask))
}

// Probs is the softmax of image i's logits.
func (e *LesionReview) Probs(i int) []float64 {
	return Softmax(e.Res.Logits[i*e.Res.NumClasses : (i+1)*e.Res.NumClasses])
}

// LesionFigures are the measurements of evaluation: accuracy, pointing game, mean energy in the lesion's
// mask, and mean energy on the ruler's band over the images that show one.
type LesionFigures struct {
	Accuracy, Pointing, Energy, Ruler float64
	Rulers                            int
}

// Figures measures the review's images.
func (e *LesionReview) Figures() LesionFigures {
	var f LesionFigures
	n := float64(len(e.Samples))
	for i, s := range e.Samples {
		if e.Predicted(i) == s.Label {
			f.Accuracy += 1 / n
		}
		if e.Hit(i) {
			f.Pointing += 1 / n
		}
		f.Energy += e.Energy(i) / n
		if s.HasRuler() {
			f.Rulers++
			f.Ruler += Must(metrics.EnergyFraction(e.Heat(i), s.Ruler))
		}
	}
	f.Ruler /= float64(max(f.Rulers, 1))
	return f
}

// LesionTable starts the table the figures of each model go in (see LesionFigures.Row).
func LesionTable() *Table {
	return NewTable("model", "images", "accuracy", "pointing game", "energy in mask", "energy on ruler", "images with a ruler")
}

// Row adds the figures of a model, measured on n images, to t.
func (f LesionFigures) Row(t *Table, model string, n int) *Table {
	return t.Row(model, n, f.Accuracy, f.Pointing, f.Energy, f.Ruler, f.Rulers)
}

// Caption describes image i: truth, prediction with its probability, and how the map fares.
func (e *LesionReview) Caption(i int) string {
	c := e.Predicted(i)
	verdict := "miss"
	if e.Hit(i) {
		verdict = "hit"
	}
	return fmt.Sprintf("#%d %s -> %s %.2f; %s, energy %.2f", i, e.Label(e.Samples[i].Label), e.Label(c), e.Probs(i)[c], verdict, e.Energy(i))
}

// Show shows the images idx with their maps, then the same maps over the ground truth.
func (e *LesionReview) Show(idx []int) {
	var rows []display.Row
	var onTruth []image.Image
	var captions []string
	for _, i := range idx {
		rows = append(rows, display.Row{Image: e.Samples[i].Image, Map: e.Heat(i), Caption: e.Caption(i)})
		onTruth = append(onTruth, Must(display.Overlay(Truth(e.Samples[i]), e.Heat(i)).Alpha(0.45).Image()))
		captions = append(captions, fmt.Sprintf("#%d map over the mask", i))
	}
	Show(display.Rows(rows...),
		display.ImageGrid(onTruth...).Labels(captions...).TileSize(192).Title("Grad-CAM over the ground truth (lesion white, ruler grey)"))
}
