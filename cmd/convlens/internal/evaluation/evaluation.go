// Package evaluation measures the built-in models on their held-out data:
// accuracy, and for the lesion models how well Grad-CAM localises the lesion
// (and the ruler, for the shortcut model). `convlens eval mnist|lesions|cells`
// prints what [Run] returns, and the tests assert the same figures.
//
// # Localisation figures
//
// For each image, M is the Grad-CAM map of the model's predicted class
// (gradcam.Top(1)) at layer [embedded.LesionsGradCAMLayer], normalised as
// package gradcam does (ReLU, min-max, bilinear resize to 128x128, min-max):
// M(p) in [0,1] for every pixel p. With a ground-truth mask S (a set of
// pixels):
//
//   - Pointing game: a hit when the pixel where M is largest lies in S (on a
//     tie, the first such pixel in row-major order; a blank map therefore
//     scores as the top-left pixel). pointing_game is the fraction of images
//     that are hits. No tolerance margin is granted.
//   - Energy fraction: Σ_{p∈S} M(p) / Σ_p M(p), the share of the map's
//     total mass that falls in S; 0 for a blank map. energy_in_mask is its
//     mean over the images with S the lesion mask; energy_on_ruler its mean
//     over the images that show a ruler, with S the ruler's band.
//
// For reference, a map spread evenly over the image gives an energy
// fraction equal to the mask's share of the image: about 0.15 for a
// lesion, 0.05 to 0.1 for a ruler's band.
package evaluation

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/convlens/convlens/internal/parallel"

	"github.com/convlens/convlens/datasets/celldata"
	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
)

// Figure is one measured value, printed as "name: value".
type Figure struct {
	Name  string
	Value float64
}

// Figures are the measurements of one evaluation, in the order printed.
type Figures []Figure

// String prints one "name: value" line per figure, values with four decimals.
func (f Figures) String() string {
	var b strings.Builder
	for _, x := range f {
		fmt.Fprintf(&b, "%s: %.4f\n", x.Name, x.Value)
	}
	return b.String()
}

// Get returns the value of the named figure.
func (f Figures) Get(name string) (float64, bool) {
	for _, x := range f {
		if x.Name == name {
			return x.Value, true
		}
	}
	return 0, false
}

// Datasets are the names [Run] knows.
var Datasets = []string{"mnist", "lesions", "cells"}

// Options configures [Run].
type Options struct {
	// Grey evaluates the greyscale cells model (cells only).
	Grey bool
	// Shortcut evaluates the shortcut lesion model (lesions only).
	Shortcut bool
	// Images is the number of held-out images for lesions and cells; 0
	// means [DefaultLesionImages] or [DefaultCellImages]. MNIST always uses
	// its 2,000 held-out digits.
	Images int
	// Backend to run on; nil means the pure-Go backend.
	Backend compute.Backend
}

// Defaults of [Options.Images].
const (
	DefaultLesionImages = 500
	DefaultCellImages   = 1000
)

// Run evaluates the embedded model of a dataset on its held-out data.
func Run(dataset string, opt Options) (Figures, error) {
	if !slices.Contains(Datasets, dataset) {
		return nil, fmt.Errorf("unknown dataset %q; known datasets: %s", dataset, strings.Join(Datasets, ", "))
	}
	if opt.Grey && dataset != "cells" {
		return nil, errors.New("--grey applies to cells only")
	}
	if opt.Shortcut && dataset != "lesions" {
		return nil, errors.New("--shortcut applies to lesions only")
	}
	if opt.Images < 0 {
		return nil, fmt.Errorf("%d images", opt.Images)
	}
	b := opt.Backend
	if b == nil {
		gb, err := gobackend.New("")
		if err != nil {
			return nil, err
		}
		defer gb.Finalize()
		b = gb
	}
	switch dataset {
	case "mnist":
		m, err := embedded.MNIST()
		if err != nil {
			return nil, err
		}
		return MNIST(b, m)
	case "lesions":
		n := opt.Images
		if n == 0 {
			n = DefaultLesionImages
		}
		if opt.Shortcut {
			m, err := embedded.LesionsShortcut()
			if err != nil {
				return nil, err
			}
			return LesionsShortcut(b, m, n)
		}
		m, err := embedded.Lesions()
		if err != nil {
			return nil, err
		}
		return Lesions(b, m, n)
	default:
		n := opt.Images
		if n == 0 {
			n = DefaultCellImages
		}
		load := embedded.Cells
		if opt.Grey {
			load = embedded.CellsGrey
		}
		m, err := load()
		if err != nil {
			return nil, err
		}
		acc, err := CellsAccuracy(b, m, n)
		if err != nil {
			return nil, err
		}
		return Figures{{"accuracy", acc}}, nil
	}
}

// MNIST measures the accuracy of m on the 2,000 held-out MNIST digits.
func MNIST(b compute.Backend, m models.Model) (Figures, error) {
	held, err := mnistdata.HeldOut()
	if err != nil {
		return nil, err
	}
	pixels := held.Float32()
	const plane = mnistdata.Rows * mnistdata.Cols
	acc, err := accuracy(b, m, held.Len(), 500, func(i int, dst []float32) int {
		copy(dst, pixels[i*plane:(i+1)*plane])
		return int(held.Labels[i])
	})
	if err != nil {
		return nil, err
	}
	return Figures{{"accuracy", acc}}, nil
}

// CellsAccuracy is the accuracy of a cells model on the first n held-out cells.
func CellsAccuracy(b compute.Backend, m models.Model, n int) (float64, error) {
	set := celldata.HeldOut()
	return accuracy(b, m, n, 250, func(i int, dst []float32) int {
		s := set.Sample(i)
		s.Float32(dst)
		return int(s.Class)
	})
}

// LesionsAccuracy is the accuracy of a lesion model on the first n images of set.
func LesionsAccuracy(b compute.Backend, m models.Model, set lesiondata.Set, n int) (float64, error) {
	return accuracy(b, m, n, 50, func(i int, dst []float32) int {
		s := set.Sample(i)
		s.Float32(dst)
		return int(s.Class)
	})
}

// accuracy is the fraction of n examples that m classifies right, fed batch at a
// time on b (see [Correct] for fill).
func accuracy(b compute.Backend, m models.Model, n, batch int, fill func(i int, dst []float32) int) (float64, error) {
	r := models.NewRunner(b, m)
	defer r.Close()
	correct, err := Correct(r, n, batch, fill)
	if err != nil {
		return 0, err
	}
	return float64(correct) / float64(n), nil
}

// Correct runs the model of r on n examples, batch at a time, and counts those
// whose highest logit is their label. fill writes example i's preprocessed
// input into dst (one image of the model's input shape) and returns its
// label; it is called from several goroutines at once.
func Correct(r *models.Runner, n, batch int, fill func(i int, dst []float32) int) (int, error) {
	if n <= 0 {
		return 0, errors.New("no examples to evaluate")
	}
	correct := 0
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		x, labels := Batch(r.Model().Input(), lo, hi, fill)
		logits, _, err := r.Run(x)
		x.FinalizeAll()
		if err != nil {
			return 0, err
		}
		flat := tensors.MustCopyFlatData[float32](logits)
		logits.FinalizeAll()
		for i, label := range labels {
			if argmax(flat[i*len(flat)/len(labels):(i+1)*len(flat)/len(labels)]) == label {
				correct++
			}
		}
	}
	return correct, nil
}

// Batch fills a batch of examples lo..hi-1 in parallel (see [Correct]) and
// returns it with the labels.
func Batch(in models.Input, lo, hi int, fill func(i int, dst []float32) int) (*tensors.Tensor, []int) {
	shape := in.Shape(hi - lo)
	size := 1
	for _, d := range shape[1:] {
		size *= d
	}
	data := make([]float32, (hi-lo)*size)
	labels := make([]int, hi-lo)
	parallel.For(hi-lo, func(i int) {
		labels[i] = fill(lo+i, data[i*size:(i+1)*size])
	})
	return tensors.FromFlatDataAndDimensions(data, shape...), labels
}

func argmax(row []float32) int {
	best := 0
	for c, v := range row {
		if v > row[best] {
			best = c
		}
	}
	return best
}

// LesionStats are the measurements of a lesion model on a set of images.
type LesionStats struct {
	// Images evaluated, of which Correct were classified correctly and
	// Hits scored in the pointing game.
	Images, Correct, Hits int
	// Energy is the mean energy fraction in the lesion mask.
	Energy float64
	// RulerImages showed a ruler; RulerEnergy is the mean energy fraction
	// on the ruler's band over them (NaN when none did).
	RulerImages int
	RulerEnergy float64
}

// Accuracy is Correct / Images.
func (s *LesionStats) Accuracy() float64 { return float64(s.Correct) / float64(s.Images) }

// PointingGame is Hits / Images.
func (s *LesionStats) PointingGame() float64 { return float64(s.Hits) / float64(s.Images) }

// MeasureLesions runs Grad-CAM of the predicted class at
// [embedded.LesionsGradCAMLayer] on the first n images of set, and measures
// accuracy, pointing game and energy fractions (see the package doc).
func MeasureLesions(b compute.Backend, m models.Model, set lesiondata.Set, n int) (*LesionStats, error) {
	if n <= 0 {
		return nil, errors.New("no images to evaluate")
	}
	r := models.NewRunner(b, m)
	defer r.Close()
	cam, err := gradcam.New(r, embedded.LesionsGradCAMLayer).Done()
	if err != nil {
		return nil, err
	}
	const batch = 50
	st := &LesionStats{Images: n}
	var energy, ruler float64
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		samples := make([]*lesiondata.Sample, hi-lo)
		x, labels := Batch(m.Input(), lo, hi, func(i int, dst []float32) int {
			s := set.Sample(i)
			s.Float32(dst)
			samples[i-lo] = s
			return int(s.Class)
		})
		res, err := cam.Explain(x, gradcam.Top(1))
		x.FinalizeAll()
		if err != nil {
			return nil, err
		}
		for i, s := range samples {
			c, _, err := res.Predicted(i)
			if err != nil {
				return nil, err
			}
			if c == labels[i] {
				st.Correct++
			}
			heat, err := res.Map(i, 0)
			if err != nil {
				return nil, err
			}
			hit, err := metrics.PointingHit(heat, s.Mask)
			if err != nil {
				return nil, fmt.Errorf("image %d: %w", i, err)
			}
			if hit {
				st.Hits++
			}
			e, err := metrics.EnergyFraction(heat, s.Mask)
			if err != nil {
				return nil, fmt.Errorf("image %d: %w", i, err)
			}
			energy += e
			if s.HasRuler() {
				st.RulerImages++
				e, err := metrics.EnergyFraction(heat, s.Ruler)
				if err != nil {
					return nil, fmt.Errorf("image %d, ruler: %w", i, err)
				}
				ruler += e
			}
		}
	}
	st.Energy = energy / float64(n)
	st.RulerEnergy = ruler / float64(st.RulerImages) // NaN when 0/0
	return st, nil
}

// Lesions measures the lesion model m on n held-out images with rulers
// independent of the class (lesiondata.Standard): accuracy, pointing_game,
// energy_in_mask, and energy_on_ruler over the images with a ruler.
func Lesions(b compute.Backend, m models.Model, n int) (Figures, error) {
	st, err := MeasureLesions(b, m, lesiondata.HeldOut(lesiondata.Standard()), n)
	if err != nil {
		return nil, err
	}
	return Figures{
		{"accuracy", st.Accuracy()},
		{"pointing_game", st.PointingGame()},
		{"energy_in_mask", st.Energy},
		{"energy_on_ruler", st.RulerEnergy},
	}, nil
}

// LesionsShortcut measures the shortcut model m on n held-out images drawn
// three ways from the same seeds, so with the same skin and distractors:
//
//   - accuracy: like its training images (lesiondata.Shortcut): a ruler on
//     every image labelled suspicious and none on benign ones, and a lesion
//     that looks like the other class in a quarter of them;
//   - accuracy_uncorrelated: a ruler on half of the images of each class,
//     and every lesion looking like its class (lesiondata.Uncorrelated);
//   - accuracy_reversed: a ruler on every benign image and no suspicious one;
//   - energy_on_ruler: on the uncorrelated images that show a ruler, the
//     mean fraction of Grad-CAM energy on the ruler's band;
//   - energy_in_mask and pointing_game on the uncorrelated images.
//
// A model that reads the lesion scores at least 0.75 on the first set and
// about the same on the other two; one that reads the ruler scores near 1,
// 0.5 and 0.
func LesionsShortcut(b compute.Backend, m models.Model, n int) (Figures, error) {
	corr, err := LesionsAccuracy(b, m, lesiondata.HeldOut(lesiondata.Shortcut()), n)
	if err != nil {
		return nil, err
	}
	rev, err := LesionsAccuracy(b, m, lesiondata.HeldOut(lesiondata.Config{RulerBenign: 1, RulerSuspicious: 0}), n)
	if err != nil {
		return nil, err
	}
	st, err := MeasureLesions(b, m, lesiondata.HeldOut(lesiondata.Uncorrelated()), n)
	if err != nil {
		return nil, err
	}
	return Figures{
		{"accuracy", corr},
		{"accuracy_uncorrelated", st.Accuracy()},
		{"accuracy_reversed", rev},
		{"energy_on_ruler", st.RulerEnergy},
		{"energy_in_mask", st.Energy},
		{"pointing_game", st.PointingGame()},
	}, nil
}
