package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
)

type featuresFlags struct {
	model, input, out, colormap string
	images, layers              listFlag
	top, perPage, tile, index   int
}

// layerStats is one entry of stats.json.
type layerStats struct {
	Layer         string  `json:"layer"`
	Channels      int     `json:"channels"`
	Height        int     `json:"height"`
	Width         int     `json:"width"`
	BlankFraction float64 `json:"blank_fraction"`
	Mean          float64 `json:"mean"`
}

func runFeatures(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("features", stderr)
	var f featuresFlags
	fs.StringVar(&f.model, "model", "", "model: an .onnx file or a built-in model name")
	fs.Var(&f.images, "image", "PNG or JPEG image; repeat or separate with commas for a batch")
	fs.StringVar(&f.input, "input", "", "preprocessed float32 batch in a .npy file, in the model's layout (e.g. [N,C,H,W]), fed as is")
	fs.Var(&f.layers, "layers", "layer names, comma-separated, or \"all\" for every layer with spatial axes (see `convlens layers`)")
	fs.StringVar(&f.out, "out", "", "directory for one grid PNG per layer (several pages if needed) and stats.json; created if missing")
	fs.IntVar(&f.top, "top", 0, "draw only each layer's K most active channels (by mean activation), most active first; 0: all")
	fs.StringVar(&f.colormap, "colormap", "viridis", "colormap of the grids: "+strings.Join(display.ColormapNames(), ", "))
	fs.IntVar(&f.perPage, "per-page", display.DefaultGridPerPage, "most tiles on one page; larger layers take several pages")
	fs.IntVar(&f.tile, "tile", 0, fmt.Sprintf("tile side in pixels (at least %d); 0: automatic, about 96", display.MinGridTile))
	fs.IntVar(&f.index, "index", 0, "which image of the batch to draw and summarise, from 0")
	if err := parse(fs, args); err != nil {
		return err
	}
	cmap, err := f.check()
	if err != nil {
		return err
	}
	m, err := openModel(f.model)
	if err != nil {
		return err
	}
	layers, err := featuremaps.Select(m, f.layers...)
	if err != nil {
		return err
	}
	for _, l := range layers {
		if _, err := models.SpatialLayer(m, l.Name); err != nil {
			return err
		}
	}
	cam := camFlags{images: f.images, input: f.input}
	x, _, err := cam.batch(m)
	if err != nil {
		return err
	}
	if n := x.Shape().Dimensions[0]; f.index >= n {
		return fmt.Errorf("--index %d out of range: the batch has %d image(s), numbered from 0", f.index, n)
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	r := models.NewRunner(b, m)
	defer r.Close()
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = l.Name
	}
	acts, err := featuremaps.Extract(r, x, names...)
	if err != nil {
		return cam.inImage(err)
	}
	files, err := writeFeatures(f, cmap, acts)
	if err != nil {
		return err
	}
	depth, err := acts.Depth(f.index)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, depth)
	fmt.Fprintf(stdout, "wrote stats.json and %d grid page(s) for %d layer(s) to %s\n", len(files)-1, len(acts.Maps), f.out)
	return nil
}

// check validates the flags that need no model and returns the colormap.
func (f *featuresFlags) check() (display.Colormap, error) {
	switch {
	case len(f.images) == 0 && f.input == "":
		return display.Colormap{}, usageError{errors.New("give --image IMG or --input X.npy")}
	case len(f.images) > 0 && f.input != "":
		return display.Colormap{}, usageError{errors.New("give --image or --input, not both")}
	case len(f.layers) == 0:
		return display.Colormap{}, usageError{errors.New("--layers is required: layer names or \"all\" (list layers with `convlens layers --model M`)")}
	case f.out == "":
		return display.Colormap{}, usageError{errors.New("--out DIR is required")}
	case f.top < 0:
		return display.Colormap{}, usageError{fmt.Errorf("--top %d: K must be at least 1 (or 0 for all channels)", f.top)}
	case f.perPage < 1:
		return display.Colormap{}, usageError{fmt.Errorf("--per-page %d: want at least 1", f.perPage)}
	case f.tile != 0 && f.tile < display.MinGridTile:
		return display.Colormap{}, usageError{fmt.Errorf("--tile %d: want at least %d, or 0 for automatic", f.tile, display.MinGridTile)}
	case f.index < 0:
		return display.Colormap{}, usageError{fmt.Errorf("--index %d: images are numbered from 0", f.index)}
	}
	cmap, err := display.ColormapByName(f.colormap)
	if err != nil {
		return display.Colormap{}, usageError{err}
	}
	return cmap, nil
}

// writeFeatures renders every grid page and stats.json into --out, staged
// and committed together, so that an error leaves no partial output and the
// previous run's files as they were. Once committed, the folder holds the
// grids of exactly the layers stats.json lists: the grids a previous run
// wrote for layers this one does not draw again are removed (see
// [staleGrids]). It returns the names of the files written.
func writeFeatures(f featuresFlags, cmap display.Colormap, acts *featuremaps.Activations) (files []string, err error) {
	undo, err := makeDir(f.out)
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	out := stageOutputs()
	defer out.Discard()

	var stats []layerStats
	for i, fm := range acts.Maps {
		var tiles heatmap.Tiles
		if f.top > 0 {
			tiles, err = fm.TopTiles(f.index, f.top)
		} else {
			tiles, err = fm.Tiles(f.index)
		}
		if err != nil {
			return nil, err
		}
		grid := display.TileGrid(tiles).Colormap(cmap).PerPage(f.perPage).TileSize(f.tile)
		base := gridBase(i, len(acts.Maps), fm.Layer.Name)
		pages := grid.Pages()
		for p := range pages {
			img, err := grid.Page(p)
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", fm.Layer.Name, err)
			}
			name := base + ".png"
			if pages > 1 {
				name = fmt.Sprintf("%s_p%d.png", base, p+1)
			}
			if err := stagePNG(out, filepath.Join(f.out, name), img); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
		s, err := fm.Stats(f.index, 0)
		if err != nil {
			return nil, err
		}
		stats = append(stats, layerStats{Layer: s.Layer, Channels: s.Channels, Height: s.Height, Width: s.Width,
			BlankFraction: s.BlankFraction, Mean: s.Mean})
	}
	js, err := json.MarshalIndent(stats, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := stageText(out, filepath.Join(f.out, "stats.json"), string(js)+"\n"); err != nil {
		return nil, err
	}
	files = append(files, "stats.json")
	stale, err := staleGrids(f.out, files) // Read before the commit replaces stats.json.
	if err != nil {
		return nil, err
	}
	if err := out.Commit(); err != nil {
		return nil, err
	}
	for _, name := range stale {
		if err := os.Remove(filepath.Join(f.out, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing %s, a grid of the previous run that stats.json no longer lists: %w", name, err)
		}
	}
	return files, nil
}

// gridBase names the grid of layer i of n, before its page suffix and
// extension: its index first, so that the files list in model order.
func gridBase(i, n int, layer string) string {
	return fmt.Sprintf("%0*d_%s", len(fmt.Sprint(n-1)), i, fileName(layer))
}

// pageSuffix ends the name of a grid's page after its base: ".png" for a
// one-page grid, "_pN.png" for page N.
var pageSuffix = regexp.MustCompile(`^(_p[1-9][0-9]*)?\.png$`)

// staleGrids lists the files in dir other than keep that a previous run
// wrote as grids of the layers its stats.json lists, named as [gridBase]
// and [pageSuffix] name them. Files named otherwise are not convlens's and
// are never listed; without a stats.json that parses, nothing is.
func staleGrids(dir string, keep []string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the previous run's stats.json: %w", err)
	}
	var prev []layerStats
	if json.Unmarshal(data, &prev) != nil {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, e := range entries {
		if !e.Type().IsRegular() || slices.Contains(keep, e.Name()) {
			continue
		}
		for i, s := range prev {
			if rest, ok := strings.CutPrefix(e.Name(), gridBase(i, len(prev), s.Layer)); ok && pageSuffix.MatchString(rest) {
				stale = append(stale, e.Name())
				break
			}
		}
	}
	return stale, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName turns a layer name such as "/layer1/layer1.0/relu_1/Relu_output_0"
// into a file name: "layer1_layer1.0_relu_1_Relu_output_0".
func fileName(layer string) string {
	s := strings.Trim(unsafeChars.ReplaceAllString(layer, "_"), "_.")
	if s == "" {
		return "layer"
	}
	return s
}
