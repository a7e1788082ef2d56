package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/ml/model"
)

type reportFlags struct {
	model, method, out string
	images             listFlag
	class              classFlag
	layers             layerFlags
	size               sizeFlag
}

// reportTop is how many classes a report page lists.
const reportTop = 5

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	var f reportFlags
	fs.StringVar(&f.model, "model", "", "model: an .onnx file or a built-in model name")
	fs.Var(&f.images, "image", "PNG or JPEG image; repeat or separate with commas: one page per image")
	f.layers.register(fs, "several layers are averaged")
	fs.Var(&f.size, "size", sizeUsage)
	fs.StringVar(&f.method, "method", "gradcam", "method: "+joinComma(gradcam.MethodNames()))
	fs.Var(&f.class, "class", "class index the heat map explains (default: each image's predicted class)")
	fs.StringVar(&f.out, "out", "", "the report: one self-contained HTML file, one A4 page per image")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case len(f.images) == 0:
		return usageError{errors.New("give at least one --image IMG")}
	case f.out == "":
		return usageError{errors.New("--out report.html is required")}
	case gradcam.Methods[f.method] == nil:
		return usageError{fmt.Errorf("unknown --method %q; available: %s", f.method, joinComma(gradcam.MethodNames()))}
	}
	target, err := f.class.one()
	if err != nil {
		return err
	}
	m, err := openClassifier(f.model)
	if err != nil {
		return err
	}
	pictures := make([]image.Image, len(f.images))
	for i, path := range f.images {
		if pictures[i], err = models.LoadImage(path); err != nil {
			return err
		}
	}
	if err := fitSize(m, f.size, imageSizes(pictures)); err != nil {
		return err
	}
	x, err := m.Input().Tensor(pictures...)
	if err != nil {
		return err
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	r := models.NewRunner(b, m)
	defer r.Close()
	method := gradcam.Methods[f.method]
	cam, err := newCAM(r, f.layers, method, stderr)
	if err != nil {
		return err
	}
	layerNote := ""
	if len(f.layers.names) == 0 && len(cam.Layers()) > 0 {
		layerNote = "chosen automatically: the last layer with spatial axes (no layer was given)"
	}
	res, err := cam.Explain(x, target)
	if err != nil {
		return (&camFlags{images: f.images}).inImage(err)
	}
	lines, err := predictions(res, m.Labels(), "")
	if err != nil {
		return err
	}
	sum, sumOf := weightsChecksum(m)
	info := display.ReportInfo{
		Model: m.Name(), Checksum: sum, ChecksumOf: sumOf,
		Method: method.Name(), Layers: cam.Layers(), LayerNote: layerNote,
		Date: time.Now(),
	}
	pages := make([]display.ReportPage, len(pictures))
	for n, pic := range pictures {
		probs, err := res.Probabilities(n)
		if err != nil {
			return fmt.Errorf("%s: %w", f.images[n], err)
		}
		c, heat, _, err := explained(res, n, 0)
		if err != nil {
			return err
		}
		page := display.ReportPage{Title: filepath.Base(f.images[n]), Image: pic, Map: heat,
			Top: topClasses(probs, m.Labels(), reportTop)}
		blank, err := res.Blank(n, 0)
		if err != nil {
			return err
		}
		if blank {
			page.BlankNote = "The heat map is blank for this class: " + strings.TrimPrefix(blankNote(method.Name(), len(res.Layers) > 0), "the map is blank: ") + "."
		}
		if c >= 0 && c != page.Top[0].Index {
			rc := reportClass(c, probs, m.Labels())
			page.Explained = &rc
		}
		pages[n] = page
	}
	page, err := display.Report(info, pages...).HTML()
	if err != nil {
		return err
	}
	out := stageOutputs()
	defer out.Discard()
	if err := stageText(out, f.out, page); err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	fmt.Fprint(stdout, lines)
	fmt.Fprintf(stdout, "wrote %s: %d page(s), %s at %s\n", f.out, len(pages), method.Name(), joinComma(cam.Layers()))
	return nil
}

// weightsChecksum identifies the model's exact weights: the SHA-256 of the
// file for an ONNX model, otherwise of its variables (each one's path, shape
// and raw values, in path order).
func weightsChecksum(m models.Model) (sum, of string) {
	if c, ok := m.(interface{ Checksum() string }); ok && c.Checksum() != "" {
		return c.Checksum(), "SHA-256 of the model file"
	}
	store := m.Store()
	if store == nil {
		return "", "no checksum: the model has no weight store"
	}
	var vars []*model.Variable
	for v := range store.IterVariables() {
		vars = append(vars, v)
	}
	if len(vars) == 0 {
		return "", "no checksum: the model has no weights"
	}
	slices.SortFunc(vars, func(a, b *model.Variable) int { return cmp.Compare(a.Path(), b.Path()) })
	h := sha256.New()
	for _, v := range vars {
		t, err := v.Value()
		if err != nil || t == nil {
			return "", fmt.Sprintf("no checksum: variable %s has no value", v.Path())
		}
		fmt.Fprintf(h, "%s\x00%s\x00", v.Path(), t.Shape())
		if err := t.ConstBytes(func(data []byte) {
			_ = binary.Write(h, binary.LittleEndian, uint64(len(data)))
			h.Write(data)
		}); err != nil {
			return "", fmt.Sprintf("no checksum: reading variable %s: %v", v.Path(), err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), fmt.Sprintf("SHA-256 of the weights: %d variable(s), each one's path, shape and values, in path order", len(vars))
}

// topClasses returns the k most probable classes, best first (ties: lower index first).
func topClasses(probs []float64, labels []string, k int) []display.ReportClass {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(probs[b], probs[a]) })
	out := make([]display.ReportClass, 0, k)
	for _, c := range idx[:min(k, len(idx))] {
		out = append(out, reportClass(c, probs, labels))
	}
	return out
}

func reportClass(c int, probs []float64, labels []string) display.ReportClass {
	rc := display.ReportClass{Index: c, Probability: probs[c]}
	if c < len(labels) {
		rc.Label = labels[c]
	}
	return rc
}

func joinComma(s []string) string { return strings.Join(s, ", ") }
