package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// smallCNNLayers are the layers of the lesion and cell networks for an
// input of side `side`, with their shapes for a batch of one.
func smallCNNLayers(side, classes int, grey bool) []models.Layer {
	type l struct {
		name string
		dims []int
	}
	var want []l
	if grey {
		want = append(want, l{"grey", []int{1, side, side, 1}})
	}
	h := side / 2
	want = append(want,
		l{"conv1", []int{1, h, h, 16}}, l{"relu1", []int{1, h, h, 16}}, l{"pool1", []int{1, h / 2, h / 2, 16}},
		l{"conv2", []int{1, h / 2, h / 2, 32}}, l{"relu2", []int{1, h / 2, h / 2, 32}}, l{"pool2", []int{1, h / 4, h / 4, 32}},
		l{"conv3", []int{1, h / 4, h / 4, 64}}, l{"relu3", []int{1, h / 4, h / 4, 64}},
		l{"conv4", []int{1, h / 4, h / 4, 64}}, l{"relu4", []int{1, h / 4, h / 4, 64}},
		l{"gap", []int{1, 64}}, l{"logits", []int{1, classes}})
	out := make([]models.Layer, len(want))
	for i, w := range want {
		out[i].Name = w.name
		out[i].Shape.Dimensions = w.dims
	}
	return out
}

// embeddedModels are the models of this file and cells.go, with what each
// must look like.
var embeddedModels = []struct {
	name   string
	load   func() (*models.Native, error)
	loadFS func(fs.FS) (*models.Native, error)
	efs    interface{ ReadFile(string) ([]byte, error) }
	dir    string
	vars   []weight
	input  models.Input
	labels []string
	layers []models.Layer
}{
	{LesionsName, Lesions, LoadLesions, lesionsWeights, "weights/lesions", lesionsVariables, LesionsInput, LesionsLabels(), smallCNNLayers(128, 3, false)},
	{LesionsShortcutName, LesionsShortcut, LoadLesionsShortcut, lesionsWeights, "weights/lesions-shortcut", lesionsVariables, LesionsInput, LesionsLabels(), smallCNNLayers(128, 3, false)},
	{CellsName, Cells, LoadCells, cellsWeights, "weights/cells", cellsVariables, CellsInput, CellsLabels(), smallCNNLayers(64, 2, false)},
	{CellsGreyName, CellsGrey, LoadCellsGrey, cellsWeights, "weights/cells-grey", cellsGreyVariables, CellsInput, CellsLabels(), smallCNNLayers(64, 2, true)},
}

func TestEmbeddedLesionAndCellModels(t *testing.T) {
	for _, e := range embeddedModels {
		m, err := e.load()
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if m.Name() != e.name || !slices.Equal(m.Labels(), e.labels) || m.Input().Layout != e.input.Layout ||
			m.Input().Height != e.input.Height || m.Input().Channels != 3 {
			t.Errorf("%s: name %q labels %v input %+v", e.name, m.Name(), m.Labels(), m.Input())
		}
		layers, err := m.Check()
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if len(layers) != len(e.layers) {
			t.Fatalf("%s: layers %v", e.name, layers)
		}
		for i, want := range e.layers {
			if layers[i].Name != want.Name || !slices.Equal(layers[i].Shape.Dimensions, want.Shape.Dimensions) {
				t.Errorf("%s layer %d: %s %v, want %s %v", e.name, i, layers[i].Name, layers[i].Shape.Dimensions, want.Name, want.Shape.Dimensions)
			}
		}
		if _, err := models.SpatialLayer(m, LesionsGradCAMLayer); err != nil {
			t.Errorf("%s: %v", e.name, err)
		}
		// Open knows it by name.
		if o, err := Open(e.name); err != nil || o.Name() != e.name {
			t.Errorf("Open(%q): %v", e.name, err)
		}
		// The weights fit a small budget.
		total := 0
		for _, v := range e.vars {
			raw, err := e.efs.ReadFile(e.dir + "/" + v.file())
			if err != nil {
				t.Fatal(err)
			}
			total += len(raw)
		}
		if total > 1<<20 {
			t.Errorf("%s: embedded weights take %d bytes", e.name, total)
		}
	}
	if !slices.Contains(EmbeddedNames(), "lesions-shortcut") || !slices.Contains(EmbeddedNames(), "cells-grey") {
		t.Errorf("embedded names %v", EmbeddedNames())
	}
}

// TestLesionAndCellCorruptWeights damages one file of each embedded folder:
// the error names the model and the file.
func TestLesionAndCellCorruptWeights(t *testing.T) {
	for _, e := range embeddedModels {
		files := func() fstest.MapFS {
			out := fstest.MapFS{}
			for _, v := range e.vars {
				raw, err := e.efs.ReadFile(e.dir + "/" + v.file())
				if err != nil {
					t.Fatal(err)
				}
				out[v.file()] = &fstest.MapFile{Data: raw}
			}
			return out
		}
		if _, err := e.loadFS(files()); err != nil {
			t.Fatalf("%s, intact copy: %v", e.name, err)
		}
		const file = "conv3.weights.npy"
		for name, corrupt := range map[string]func(fstest.MapFS){
			"truncated": func(f fstest.MapFS) { f[file].Data = f[file].Data[:len(f[file].Data)-10] },
			"not npy":   func(f fstest.MapFS) { f[file].Data = []byte("<html>404</html>") },
			"missing":   func(f fstest.MapFS) { delete(f, file) },
		} {
			f := files()
			corrupt(f)
			_, err := e.loadFS(f)
			if err == nil {
				t.Errorf("%s %s: no error", e.name, name)
				continue
			}
			want := file
			if name == "missing" {
				want = "/conv3/weights"
			}
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), e.name+" weights") {
				t.Errorf("%s %s: error %q names neither the file nor the model", e.name, name, err)
			}
		}
	}
}

// readDir returns the files of dir and their contents.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(raw)
	}
	return out
}

// TestSaveWeightsReplacesFolderAtomically saves over an existing folder:
// a save that fails after some files leaves the previous folder exactly as
// it was, with no temporary folder left behind; a save that succeeds
// replaces every weight and keeps the folder's other files.
func TestSaveWeightsReplacesFolderAtomically(t *testing.T) {
	cells, err := Cells()
	if err != nil {
		t.Fatal(err)
	}
	grey, err := CellsGrey()
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "cells")
	if err := SaveCellsWeights(grey.Store(), dir); err == nil {
		t.Fatal("saved the grey model's weights as the colour model's")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a rejected save created the folder: %v", err)
	}
	if err := SaveCellsWeights(cells.Store(), dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("provenance"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := readDir(t, dir)

	// Another set of weights: the colour model's, each value changed.
	changed := changedStore(t, cells.Store(), cellsVariables)

	// A failure after three files.
	written := 0
	writeNPY = func(path string, data []float32, shape ...int) error {
		if written == 3 {
			return fmt.Errorf("writing %s: disk full", path)
		}
		written++
		return saveNPY(path, data, shape...)
	}
	err = SaveCellsWeights(changed, dir)
	writeNPY = saveNPY
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failing save: %v", err)
	}
	if after := readDir(t, dir); !mapsEqual(after, before) {
		t.Error("a failed save changed the folder")
	}
	assertNoLeftovers(t, parent)

	// A successful save replaces the weights and keeps the README.
	if err := SaveCellsWeights(changed, dir); err != nil {
		t.Fatal(err)
	}
	after := readDir(t, dir)
	if after["README.md"] != "provenance" || len(after) != len(before) {
		t.Errorf("files after the save: %d, README %q", len(after), after["README.md"])
	}
	for _, v := range cellsVariables {
		if after[v.file()] == before[v.file()] {
			t.Errorf("%s not replaced", v.file())
		}
	}
	if _, err := LoadCells(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	assertNoLeftovers(t, parent)
}

var saveNPY = writeNPY

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func assertNoLeftovers(t *testing.T, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// changedStore copies the variables of src, each value v as 2v+1.
func changedStore(t *testing.T, src *model.Store, vars []weight) *model.Store {
	t.Helper()
	store := model.NewStore()
	for _, v := range vars {
		val, err := src.GetVariable(v.path()).Value()
		if err != nil {
			t.Fatal(err)
		}
		flat := tensors.MustCopyFlatData[float32](val)
		for i := range flat {
			flat[i] = 2*flat[i] + 1
		}
		if _, err := store.CreateVariable(v.path(), tensors.FromFlatDataAndDimensions(flat, v.dims...)); err != nil {
			t.Fatal(err)
		}
	}
	return store
}
