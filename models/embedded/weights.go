package embedded

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/convlens/convlens/internal/npy"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// weight is one variable of a built-in model, stored in a weights folder as
// "<scope>.<name>.npy": NumPy's format, float32, C order, so numpy.load
// reads it.
type weight struct {
	scope, name string
	dims        []int
}

// path is the variable's full path in the model store.
func (w weight) path() string { return "/" + w.scope + "/" + w.name }

// file is the name of the variable's file in a weights folder.
func (w weight) file() string { return w.scope + "." + w.name + ".npy" }

// loadWeights reads every weight from dir into a new store. Each must be
// present with its exact shape and finite values; an unknown .npy file is an
// error too (it would be a weight the network does not use).
func loadWeights(dir fs.FS, weights []weight) (*model.Store, error) {
	store := model.NewStore()
	want := map[string]bool{}
	for _, w := range weights {
		want[w.file()] = true
		raw, err := fs.ReadFile(dir, w.file())
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", w.path(), err)
		}
		data, dims, err := npy.Decode(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.file(), err)
		}
		if !slices.Equal(dims, w.dims) {
			return nil, fmt.Errorf("%s: shape %v, the network needs %v", w.file(), dims, w.dims)
		}
		for i, x := range data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("%s: element %d is %v", w.file(), i, x)
			}
		}
		if _, err := store.CreateVariable(w.path(), tensors.FromFlatDataAndDimensions(data, dims...)); err != nil {
			return nil, err
		}
	}
	entries, err := fs.ReadDir(dir, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".npy") && !want[e.Name()] {
			return nil, fmt.Errorf("unexpected file %s: the network has no such variable", e.Name())
		}
	}
	return store, nil
}

// writeNPY writes one weights file; tests replace it to fail midway.
var writeNPY = npy.WriteFloat32

// saveWeights writes the weights of store into dir, one .npy file per
// variable as loadWeights reads them; other variables (optimizer state) are
// left out. Every variable is checked before anything is written.
//
// The folder is replaced as a whole: the files are written into a new
// sibling folder (".<name>.new-*", with copies of the old folder's other,
// non-.npy files), which then takes dir's place by two renames: dir to
// ".<name>.old-*", the new folder to dir; the old one is then deleted. A
// failure at any point before the renames leaves dir as it was and removes
// the new folder; if the second rename fails, the first is undone. Only a
// crash between the two renames, a moment, leaves no dir, with the previous
// weights intact in ".<name>.old-*".
func saveWeights(store *model.Store, dir string, weights []weight) error {
	values := make([][]float32, len(weights))
	for i, w := range weights {
		v := store.GetVariable(w.path())
		if v == nil {
			return fmt.Errorf("the store has no variable %s", w.path())
		}
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("variable %s: %w", w.path(), err)
		}
		if t.DType() != dtypes.Float32 || !slices.Equal(t.Shape().Dimensions, w.dims) {
			return fmt.Errorf("variable %s is %s, want float32 %v", w.path(), t.Shape(), w.dims)
		}
		if values[i], err = tensors.CopyFlatData[float32](t); err != nil {
			return fmt.Errorf("variable %s: %w", w.path(), err)
		}
	}
	dir = filepath.Clean(dir)
	parent, name := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+name+".new-")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700.
		return err
	}
	for i, w := range weights {
		if err := writeNPY(filepath.Join(tmp, w.file()), values[i], w.dims...); err != nil {
			return err
		}
	}
	old := ""
	switch entries, err := os.ReadDir(dir); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		// Keep the folder's other files (a README, say).
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".npy") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(tmp, e.Name()), data, 0o644)
			}
			if err != nil {
				return err
			}
		}
		// A name for the old folder: reserve one, then free it for the rename.
		if old, err = os.MkdirTemp(parent, "."+name+".old-"); err != nil {
			return err
		}
		if err := os.Remove(old); err != nil {
			return err
		}
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("replacing %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			if err2 := os.Rename(old, dir); err2 != nil {
				return fmt.Errorf("replacing %s: %w; the previous weights are in %s", dir, err, old)
			}
		}
		return fmt.Errorf("replacing %s: %w", dir, err)
	}
	done = true
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}
