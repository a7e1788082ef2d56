// Package demo writes the textbook walkthrough on the embedded models, with
// no network: an HTML page and the PNGs it shows. `convlens demo` runs it.
//
// Each section is a function that renders its pictures into the output
// folder and returns its part of the page; adding a story is adding a section.
package demo

import (
	"fmt"
	"html/template"
	"image"
	"image/png"
	"io"
	"path/filepath"
	"strings"

	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/internal/atomicfile"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

// Section is one part of the page: a heading, paragraphs and pictures.
type Section struct {
	Title    string
	Text     []string
	Pictures []Picture
}

// Picture is a PNG in the output folder and its caption.
type Picture struct {
	File, Caption string
}

// writer renders pictures into the output folder, staged in out.
type writer struct {
	out     *atomicfile.Set
	dir     string
	backend compute.Backend
}

func (w *writer) png(name string, img image.Image) (string, error) {
	if err := w.out.Write(filepath.Join(w.dir, name), func(f io.Writer) error { return png.Encode(f, img) }); err != nil {
		return "", err
	}
	return name, nil
}

// sections lists the stories in the order the page tells them.
var sections = []func(w *writer) (Section, error){
	mnistPixels,
	mnistFeatureMaps,
	mnistGradCAM,
	lesions,
	lesionsShortcut,
}

// Write renders every section and the page that shows them, index.html,
// whose path it returns, into dir, which must exist. It stages the files in
// out; the caller commits them. progress, if not nil, hears the title of
// each section as it starts.
func Write(out *atomicfile.Set, dir string, b compute.Backend, progress func(string)) (string, error) {
	w := &writer{out: out, dir: dir, backend: b}
	var done []Section
	for _, section := range sections {
		s, err := section(w)
		if err != nil {
			return "", err
		}
		if progress != nil {
			progress(s.Title)
		}
		done = append(done, s)
	}
	var page strings.Builder
	if err := pageTemplate.Execute(&page, done); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "index.html")
	return path, out.Write(path, func(f io.Writer) error {
		_, err := io.WriteString(f, page.String())
		return err
	})
}

var pageTemplate = template.Must(template.New("demo").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>convlens: looking inside CNNs</title>
<style>
body { font-family: Georgia, serif; max-width: 60em; margin: 2em auto; color: #111; line-height: 1.45; }
h1, h2 { font-family: Helvetica, Arial, sans-serif; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 0.9em; color: #333; }
</style></head><body>
<h1>convlens: looking inside convolutional networks</h1>
<p>Everything on this page was computed offline, on the models embedded in convlens.</p>
{{range .}}<h2>{{.Title}}</h2>
{{range .Text}}<p>{{.}}</p>
{{end}}{{range .Pictures}}<figure><img src="{{.File}}" alt="{{.Caption}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}{{end}}</body></html>
`))

// digits returns the first held-out digit of each class 0-9, as images and
// as the MNIST model's batch.
func digits() ([]image.Image, []int, *tensors.Tensor, error) {
	held, err := mnistdata.HeldOut()
	if err != nil {
		return nil, nil, nil, err
	}
	var imgs []image.Image
	var labels []int
	for want := range 10 {
		for i := range held.Len() {
			if int(held.Labels[i]) == want {
				g := image.NewGray(image.Rect(0, 0, 28, 28))
				copy(g.Pix, held.Image(i))
				imgs = append(imgs, g)
				labels = append(labels, want)
				break
			}
		}
	}
	x, err := embedded.MNISTInput.Tensor(imgs...)
	return imgs, labels, x, err
}

func mnistPixels(w *writer) (Section, error) {
	imgs, _, _, err := digits()
	if err != nil {
		return Section{}, err
	}
	grid, err := display.PixelGrid(imgs[3]).Image()
	if err != nil {
		return Section{}, err
	}
	file, err := w.png("pixels.png", grid)
	if err != nil {
		return Section{}, err
	}
	return Section{
		Title: "What the network sees: pixels",
		Text: []string{
			"A digit is a 28×28 grid of grey levels from 0 (background) to 255 (ink). A dense network flattens it into 784 numbers and forgets which pixels were neighbours; a convolution slides a small filter over the grid, so the same stroke is recognised wherever it is.",
		},
		Pictures: []Picture{{file, "A held-out MNIST 3, each pixel labelled with its value."}},
	}, nil
}

func mnistFeatureMaps(w *writer) (Section, error) {
	m, err := embedded.MNIST()
	if err != nil {
		return Section{}, err
	}
	_, _, x, err := digits()
	if err != nil {
		return Section{}, err
	}
	acts, err := featuremaps.Extract(models.NewRunner(w.backend, m), x, "relu1", "relu2", "relu3")
	if err != nil {
		return Section{}, err
	}
	var pics []Picture
	for _, fm := range acts.Maps {
		tiles, err := fm.Tiles(3)
		if err != nil {
			return Section{}, err
		}
		pages, err := display.TileGrid(tiles).Images()
		if err != nil {
			return Section{}, err
		}
		file, err := w.png("features-"+fm.Layer.Name+".png", pages[0])
		if err != nil {
			return Section{}, err
		}
		pics = append(pics, Picture{file, fmt.Sprintf("Layer %s: %d channels of %d×%d, each normalised on its own.", fm.Layer.Name, fm.C, fm.H, fm.W)})
	}
	depth, err := acts.Depth(3)
	if err != nil {
		return Section{}, err
	}
	var curve []string
	for i, l := range depth.Layers {
		curve = append(curve, fmt.Sprintf("%s %.0f%%", l, 100*depth.BlankFraction[i]))
	}
	return Section{
		Title: "Feature maps: what each layer responds to",
		Text: []string{
			"The first layer's maps still look like the digit: its filters find edges and strokes, which are everywhere. Deeper layers are coarser and more abstract, and more of their channels are blank (zero everywhere: the pattern they encode is absent from this image).",
			"Blank channels by depth, for this digit: " + strings.Join(curve, ", ") + ".",
		},
		Pictures: pics,
	}, nil
}

func mnistGradCAM(w *writer) (Section, error) {
	m, err := embedded.MNIST()
	if err != nil {
		return Section{}, err
	}
	imgs, labels, x, err := digits()
	if err != nil {
		return Section{}, err
	}
	cam, err := gradcam.New(models.NewRunner(w.backend, m), "relu2").Done()
	if err != nil {
		return Section{}, err
	}
	res, err := cam.Explain(x, gradcam.Top(1))
	if err != nil {
		return Section{}, err
	}
	var rows []display.Row
	correct, empty := 0, 0
	for n, img := range imgs {
		c, err := res.Class(n, 0)
		if err != nil {
			return Section{}, err
		}
		heat, err := res.Map(n, 0)
		if err != nil {
			return Section{}, err
		}
		score, err := res.Score(n, 0)
		if err != nil {
			return Section{}, err
		}
		if c == labels[n] {
			correct++
		}
		if lo, hi := heat.MinMax(); hi == lo {
			empty++
		}
		rows = append(rows, display.Row{Image: img, Map: heat, Caption: fmt.Sprintf("a %d, predicted %d (logit %.2f)", labels[n], c, score)})
	}
	panel, err := display.Rows(rows[:5]...).Image()
	if err != nil {
		return Section{}, err
	}
	file, err := w.png("gradcam-digits.png", panel)
	if err != nil {
		return Section{}, err
	}
	return Section{
		Title: "Grad-CAM: where the evidence for a class was",
		Text: []string{
			"Grad-CAM weighs each channel of a layer by how much the class score rises with it (the spatial mean of the gradient), sums the weighted channels and keeps the positive part. The map shows which strokes carried the decision, at the layer's 14×14 resolution, resized to the image.",
			fmt.Sprintf("The embedded model (98.95%% on 2,000 held-out digits) classifies %d of these 10 digits correctly.", correct),
			fmt.Sprintf("%d of the 10 maps are empty: every position's weighted sum is negative, so the ReLU leaves nothing. Grad-CAM's channel weights average the gradient over the whole layer, and at an intermediate layer they can cancel out; a deeper layer (relu3) or a method with per-position weights (HiResCAM, LayerCAM) shows where the evidence was.", empty),
		},
		Pictures: []Picture{{file, "Digits 0-4: the image, the Grad-CAM map at relu2 for the predicted class, and the overlay (jet, 50%)."}},
	}, nil
}

// lesionRows explains the first images of set (n of each lesion class) with
// model m and lays them out with their captions; mask names what the caption
// reports the map's energy on.
func (w *writer) lesionRows(m models.Model, set lesiondata.Set, n int, file string) (string, error) {
	var samples []*lesiondata.Sample
	for i, want := 0, map[lesiondata.Class]int{lesiondata.Benign: n, lesiondata.Suspicious: n}; len(samples) < 2*n; i++ {
		if c := set.Class(i); want[c] > 0 {
			want[c]--
			samples = append(samples, set.Sample(i))
		}
	}
	imgs := make([]image.Image, len(samples))
	for i, s := range samples {
		imgs[i] = s.Image
	}
	cam, err := gradcam.New(models.NewRunner(w.backend, m), embedded.LesionsGradCAMLayer).Done()
	if err != nil {
		return "", err
	}
	res, err := cam.ExplainImages(gradcam.Top(1), imgs...)
	if err != nil {
		return "", err
	}
	labels := m.Labels()
	rows := make([]display.Row, len(samples))
	for i, s := range samples {
		c, err := res.Class(i, 0)
		if err != nil {
			return "", err
		}
		heat, err := res.Map(i, 0)
		if err != nil {
			return "", err
		}
		inLesion, err := metrics.EnergyFraction(heat, s.Mask)
		if err != nil {
			return "", err
		}
		caption := fmt.Sprintf("%s lesion, predicted %s; energy in lesion %.2f", labels[s.Class], labels[c], inLesion)
		if s.HasRuler() {
			onRuler, err := metrics.EnergyFraction(heat, s.Ruler)
			if err != nil {
				return "", err
			}
			caption += fmt.Sprintf(", on ruler %.2f", onRuler)
		}
		rows[i] = display.Row{Image: s.Image, Map: heat, Caption: caption}
	}
	panel, err := display.Rows(rows...).Image()
	if err != nil {
		return "", err
	}
	return w.png(file, panel)
}

func lesions(w *writer) (Section, error) {
	m, err := embedded.Lesions()
	if err != nil {
		return Section{}, err
	}
	figures, err := evaluation.Lesions(w.backend, m, evaluation.DefaultLesionImages)
	if err != nil {
		return Section{}, err
	}
	file, err := w.lesionRows(m, lesiondata.HeldOut(lesiondata.Standard()), 2, "lesions.png")
	if err != nil {
		return Section{}, err
	}
	return Section{
		Title: "The clinical question: which area made the model call it suspicious?",
		Text: []string{
			"The lesion model classifies generated dermoscopy-like images as benign (round, symmetric, one colour, smooth border) or suspicious (asymmetric, irregular border, several colours), past distractors that carry no information: hair, vignetting, a ruler, lighting. Each image comes with the lesion's ground-truth mask, so Grad-CAM's answer can be checked.",
			fmt.Sprintf("On %d held-out images: %s. The pointing game counts the maps whose maximum falls inside the lesion; the energy is the share of the normalised map inside it (a map spread evenly would score about 0.15).", evaluation.DefaultLesionImages, inline(figures)),
			"A heat map shows where the evidence for the decision was, not that the decision is right.",
		},
		Pictures: []Picture{{file, "Held-out lesions: the image, the Grad-CAM map of the predicted class at relu4, and the overlay."}},
	}, nil
}

func lesionsShortcut(w *writer) (Section, error) {
	m, err := embedded.LesionsShortcut()
	if err != nil {
		return Section{}, err
	}
	figures, err := evaluation.LesionsShortcut(w.backend, m, evaluation.DefaultLesionImages)
	if err != nil {
		return Section{}, err
	}
	file, err := w.lesionRows(m, lesiondata.HeldOut(lesiondata.Uncorrelated()), 2, "lesions-shortcut.png")
	if err != nil {
		return Section{}, err
	}
	return Section{
		Title: "A shortcut, caught by Grad-CAM",
		Text: []string{
			"This model was trained where a ruler appeared next to every suspicious lesion and never next to a benign one, as happened with real dermatology data. It scores well on data like its training set and collapses once the ruler no longer goes with the label; Grad-CAM shows why: it looks at the ruler.",
			fmt.Sprintf("On %d held-out images: %s.", evaluation.DefaultLesionImages, inline(figures)),
		},
		Pictures: []Picture{{file, "The shortcut model on images where the ruler is independent of the label."}},
	}, nil
}

// inline writes figures as "name value" pairs for prose.
func inline(f evaluation.Figures) string {
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(f.String()), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		parts = append(parts, strings.ReplaceAll(name, "_", " ")+" "+value)
	}
	return strings.Join(parts, ", ")
}
