package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
)

const tinyLayer1 = "/layer1/layer1.0/relu_1/Relu_output_0"

func readStats(t *testing.T, dir string) []layerStats {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The keys are exactly those documented.
	var raw []map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("stats.json: %v", err)
	}
	for _, e := range raw {
		var keys []string
		for k := range e {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if fmt.Sprint(keys) != "[blank_fraction channels height layer mean width]" {
			t.Fatalf("stats.json entry has keys %v", keys)
		}
	}
	var stats []layerStats
	if err := json.Unmarshal(data, &stats); err != nil {
		t.Fatal(err)
	}
	return stats
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestFeaturesAllLayers: one grid per spatial layer, in model order, and
// stats.json whose numbers for the fixture's layers agree with NumPy on
// PyTorch's activations (testdata/tinycnn/act_*.npy).
func TestFeaturesAllLayers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out") // created by the command
	code, out, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput, "--layers", "all", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m, err := models.LoadONNX(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	var spatial []string
	for _, l := range m.Layers() {
		if l.Spatial(models.NCHW) {
			spatial = append(spatial, l.Name)
		}
	}
	stats := readStats(t, dir)
	var got []string
	for _, s := range stats {
		got = append(got, s.Layer)
	}
	if !slices.Equal(got, spatial) {
		t.Fatalf("stats.json layers %v, want the spatial layers in model order %v", got, spatial)
	}
	files := listDir(t, dir)
	if len(files) != len(spatial)+1 {
		t.Errorf("%d files for %d layers: %v", len(files), len(spatial), files)
	}
	if last := fmt.Sprintf("%02d_layer2_layer2.0_relu_1_Relu_output_0.png", len(spatial)-1); !slices.Contains(files, last) {
		t.Errorf("no %s among %v", last, files)
	}
	for _, f := range files {
		if strings.HasPrefix(f, ".") {
			t.Errorf("staging file left behind: %s", f)
		}
	}
	if !strings.Contains(out, "blank") || !strings.Contains(out, "wrote stats.json and 15 grid page(s) for 15 layer(s)") {
		t.Errorf("stdout lacks the depth table or the file list:\n%s", out)
	}

	// An independent computation: NumPy on PyTorch's activations of image 0.
	ref := testutil.Python(t, `
import numpy as np
for f in ["act_layer1.npy", "act_layer2_mid.npy", "act_layer2.npy"]:
    a = np.load("`+testutil.Testdata("tinycnn")+`/" + f)[0].astype(np.float64)
    blank = (a.reshape(a.shape[0], -1).max(axis=1) <= 0).mean()
    print(f, a.shape[0], a.shape[1], a.shape[2], repr(blank), repr(a.mean()))
`)
	byName := map[string]layerStats{}
	for _, s := range stats {
		byName[s.Layer] = s
	}
	layerOf := map[string]string{
		"act_layer1.npy":     tinyLayer1,
		"act_layer2_mid.npy": "/layer2/layer2.0/relu/Relu_output_0",
		"act_layer2.npy":     tinyLast,
	}
	for _, line := range strings.Split(ref, "\n") {
		var file string
		var c, h, w int
		var blank, mean float64
		if _, err := fmt.Sscan(line, &file, &c, &h, &w, &blank, &mean); err != nil {
			t.Fatalf("python output %q: %v", line, err)
		}
		s := byName[layerOf[file]]
		if s.Channels != c || s.Height != h || s.Width != w {
			t.Errorf("%s: %d channels of %dx%d, PyTorch %d of %dx%d", s.Layer, s.Channels, s.Height, s.Width, c, h, w)
		}
		if s.BlankFraction != blank {
			t.Errorf("%s: blank fraction %g, NumPy %g", s.Layer, s.BlankFraction, blank)
		}
		if math.Abs(s.Mean-mean) > 1e-5*math.Max(1, math.Abs(mean)) {
			t.Errorf("%s: mean %.7g, NumPy %.7g", s.Layer, s.Mean, mean)
		}
	}
}

// TestFeaturesPagesTopAndOrder: named layers come out in model order; a layer
// larger than --per-page takes several pages; --top draws K tiles.
func TestFeaturesPagesTopAndOrder(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := convlens(t, "features", "--model", tinyModel, "--image", catImage,
		"--layers", tinyLast+","+tinyLayer1, "--per-page", "12", "--colormap", "turbo", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	stats := readStats(t, dir)
	if len(stats) != 2 || stats[0].Layer != tinyLayer1 || stats[1].Layer != tinyLast {
		t.Fatalf("stats.json %+v, want layer1 then layer2", stats)
	}
	// 16 channels at 12 a page: 2 pages; 32 channels: 3 pages.
	want := []string{
		"0_layer1_layer1.0_relu_1_Relu_output_0_p1.png", "0_layer1_layer1.0_relu_1_Relu_output_0_p2.png",
		"1_layer2_layer2.0_relu_1_Relu_output_0_p1.png", "1_layer2_layer2.0_relu_1_Relu_output_0_p2.png",
		"1_layer2_layer2.0_relu_1_Relu_output_0_p3.png", "stats.json",
	}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}

	top := t.TempDir()
	code, _, errOut = convlens(t, "features", "--model", tinyModel, "--input", tinyInput, "--index", "2",
		"--layers", tinyLast, "--top", "4", "--tile", "32", "--out", top)
	if code != 0 {
		t.Fatalf("--top: exit %d: %s", code, errOut)
	}
	f, err := os.Open(filepath.Join(top, "0_layer2_layer2.0_relu_1_Relu_output_0.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 4 tiles of 8x8 enlarged 4 times: 2x2 tiles of 32 pixels (wider if the title needs it).
	if h := img.Bounds().Dy(); h != 2*8+22+2*(15+32)+6 {
		t.Errorf("top-4 grid is %v high, want 2 rows of 32-pixel tiles", img.Bounds())
	}
}

// TestFeaturesBadInput: every error exits non-zero with a clear message and
// writes nothing.
func TestFeaturesBadInput(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown layer", []string{"--layers", "/layer1/layer1.0/relu_2/Relu_output_0"}, 1, "closest: " + tinyLayer1},
		{"no spatial axes", []string{"--layers", "logits"}, 1, "no spatial axes"},
		{"index", []string{"--layers", "all", "--index", "3"}, 1, "--index 3 out of range: the batch has 3 image(s)"},
		{"negative index", []string{"--layers", "all", "--index", "-1"}, 2, "numbered from 0"},
		{"no layers", []string{}, 2, "--layers is required"},
		{"colormap", []string{"--layers", "all", "--colormap", "rainbow"}, 2, "unknown colormap"},
		{"top", []string{"--layers", "all", "--top", "-2"}, 2, "--top -2"},
		{"tile", []string{"--layers", "all", "--tile", "5"}, 2, "--tile 5"},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		args := append([]string{"features", "--model", tinyModel, "--input", tinyInput, "--out", dir}, c.args...)
		code, _, errOut := convlens(t, args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, code, errOut, c.code, c.want)
		}
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			t.Errorf("%s: left files behind: %v", c.name, entries)
		}
	}
	if code, _, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput, "--layers", "all"); code != 2 || !strings.Contains(errOut, "--out DIR is required") {
		t.Errorf("no --out: exit %d, %q", code, errOut)
	}
	// --out that cannot be a directory: an error, nothing half-written.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput, "--layers", "all", "--out", file); code != 1 || !strings.Contains(errOut, "--out") {
		t.Errorf("--out is a file: exit %d, %q", code, errOut)
	}
}

// snapshot maps each file of dir to its contents, and each folder to "/".
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range listDir(t, dir) {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
			files[name] = "/"
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	return files
}

// A re-run with fewer layers, or fewer pages, used to leave the previous
// run's grids beside a stats.json that did not list them. The folder now
// holds the grids of exactly the layers stats.json lists, and every file
// convlens did not write as it names its grids.
func TestFeaturesRerunRemovesStaleGrids(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput,
		"--layers", tinyLayer1+","+tinyLast, "--per-page", "12", "--out", dir); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, errOut)
	}
	// Files that are not grids of the layers stats.json lists, and a folder named as one.
	mine := []string{"notes.txt", "0_layer1_layer1.0_relu_1_Relu_output_0_draft.png", "2_layer3.png", "0_other.png"}
	for _, name := range mine {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "1_layer2_layer2.0_relu_1_Relu_output_0_p9.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput, "--layers", tinyLast, "--out", dir)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut)
	}
	want := append([]string{"0_layer2_layer2.0_relu_1_Relu_output_0.png", "1_layer2_layer2.0_relu_1_Relu_output_0_p9.png", "stats.json"}, mine...)
	slices.Sort(want)
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("folder holds %v, want %v", got, want)
	}
	if stats := readStats(t, dir); len(stats) != 1 || stats[0].Layer != tinyLast {
		t.Errorf("stats.json lists %+v", stats)
	}
}

// A failed run leaves the previous run's files exactly as they were, whether
// it fails before writing anything or while staging its grids.
func TestFeaturesFailureLeavesPreviousRun(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput,
		"--layers", tinyLayer1+","+tinyLast, "--out", dir); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, errOut)
	}
	before := snapshot(t, dir)
	// The second layer's grid cannot be written: a folder has its name.
	mid := "/layer2/layer2.0/relu/Relu_output_0"
	blocked := "1_layer2_layer2.0_relu_Relu_output_0.png"
	if err := os.Mkdir(filepath.Join(dir, blocked), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"NaN input", []string{"--input", nanInput(t), "--layers", "all"}, "values of the input are not finite"},
		{"grid not writable", []string{"--input", tinyInput, "--layers", tinyLayer1 + "," + mid}, blocked + ": it exists and is not a regular file"},
	} {
		args := append([]string{"features", "--model", tinyModel, "--out", dir}, c.args...)
		code, _, errOut := convlens(t, args...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", c.name, code, errOut, c.want)
		}
		after := snapshot(t, dir)
		delete(after, blocked)
		if !maps.Equal(after, before) {
			t.Errorf("%s: the previous run's files changed: %v, were %v", c.name, slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)))
		}
	}
}

// A command that fails removes the folders it made for its outputs, and
// only those, and only while they are empty.
func TestMakeDirUndoRemovesOnlyWhatItMade(t *testing.T) {
	parent := t.TempDir()
	undo, err := makeDir(filepath.Join(parent, "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	undo()
	if left := listDir(t, parent); len(left) > 0 {
		t.Errorf("undo left %v", left)
	}
	undo, err = makeDir(filepath.Join(parent, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "a", "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	undo()
	if left := listDir(t, filepath.Join(parent, "a")); !slices.Equal(left, []string{"other"}) {
		t.Errorf("undo left %v in a, want its other file alone", left)
	}
	undo, err = makeDir(parent) // exists: nothing to undo
	if err != nil {
		t.Fatal(err)
	}
	undo()
	if _, err := os.Stat(parent); err != nil {
		t.Errorf("undo removed a folder it did not make: %v", err)
	}
}
