// Package embedded holds the models built into convlens, compiled into the
// binary with their weights (weights/, as .npy files) so that they run
// offline: an MNIST digit classifier, the skin-lesion classifier and its
// shortcut-learning twin, and the colour and greyscale blood-cell
// classifiers; and their held-out samples with ground truth ([LesionSamples],
// [CellSamples]), drawn from the public generators under datasets/.
// [Open] resolves any name the command line takes: a built-in model, a
// downloadable pretrained one (package models/pretrained), or an ONNX path.
package embedded

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/pretrained"
)

// embedded maps the names of the models built into convlens to their loaders.
var embedded = map[string]func() (models.Model, error){}

// registerEmbedded makes a built-in model available to [Open] by name.
func registerEmbedded(name string, load func() (models.Model, error)) { embedded[name] = load }

// EmbeddedNames lists the built-in models [Open] knows by name.
func EmbeddedNames() []string { return slices.Sorted(maps.Keys(embedded)) }

// Open returns the built-in model called name, the pretrained model of that
// name (downloaded on first use, see [Pretrained]), or loads name as an ONNX file.
func Open(name string) (models.Model, error) {
	if load, ok := embedded[name]; ok {
		return load()
	}
	if _, ok := pretrained.Lookup(name); ok {
		return pretrained.Load(name)
	}
	if !strings.HasSuffix(strings.ToLower(name), ".onnx") && !strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("no model %q and not an .onnx path; built-in models: %s; downloadable: %s",
			name, strings.Join(EmbeddedNames(), ", "), strings.Join(pretrained.Names(), ", "))
	}
	return models.LoadONNX(name)
}
