package display_test

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/heatmap"
)

// photo returns a small stand-in for a photograph: a horizontal grey ramp.
func photo(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8(255 * x / (w - 1))
			img.Set(x, y, color.RGBA{v, v, v, 255})
		}
	}
	return img
}

func ExampleColormapByName() {
	for _, name := range []string{"jet", "Viridis", "gray", "rainbow"} {
		c, err := display.ColormapByName(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(c, c.At(0), c.At(1))
	}
	// Output:
	// jet {0 0 128 255} {128 0 0 255}
	// viridis {68 1 84 255} {253 231 37 255}
	// grey {0 0 0 255} {255 255 255 255}
	// display: unknown colormap "rainbow" (want one of grey, jet, turbo, viridis)
}

func ExampleColormap_At() {
	// Values are quantised to floor(255*v), as pytorch-grad-cam does.
	fmt.Println(display.Jet.At(0.5) == display.Jet.Index(127))
	fmt.Println(display.Jet.At(-3) == display.Jet.Index(0), display.Jet.At(7) == display.Jet.Index(255))
	// Output:
	// true
	// true true
}

func ExampleOverlay() {
	base := photo(8, 6)
	// A 2x2 CAM, normalised to [0, 1]: the right-hand side matters.
	cam := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0, 1}}
	img, err := display.Overlay(base, cam).Alpha(0.5).Image()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds())
	// Left: black photo under Jet's dark blue; right: white photo under
	// dark red. The blend is then brightened so that its largest channel
	// value anywhere becomes 255.
	fmt.Println(img.At(0, 0), img.At(7, 5))

	_, err = display.Overlay(base, cam).Alpha(2).Image()
	fmt.Println(err)
	// Output:
	// (0,0)-(8,6)
	// {0 0 74 255} {223 148 148 255}
	// display: overlay alpha 2 outside [0, 1]
}

func ExampleHeatmap() {
	fm := heatmap.Map{Width: 2, Height: 1, Values: []float32{-4, 12}} // a raw feature map
	img, err := display.Heatmap(fm).Colormap(display.Grey).Range(fm.MinMax()).Size(4, 2).Image()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds(), img.At(0, 0), img.At(3, 1))
	// Output:
	// (0,0)-(4,2) {0 0 0 255} {255 255 255 255}
}

func ExamplePanel() {
	cam := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	img, err := display.Panel(photo(64, 48), cam).Caption("tabby cat (281)  score 0.874").Image()
	if err != nil {
		log.Fatal(err)
	}
	// Three 64-pixel columns and a colour bar, under the caption.
	fmt.Println(img.Bounds().Dx() > 3*64, img.Bounds().Dy() > 48)
	// Output:
	// true true
}

func ExampleRows() {
	cam := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	one, err := display.Rows(display.Row{Image: photo(64, 48), Map: cam, Caption: "cat 0.87"}).Image()
	if err != nil {
		log.Fatal(err)
	}
	two, err := display.Rows(
		display.Row{Image: photo(64, 48), Map: cam, Caption: "cat 0.87"},
		display.Row{Image: photo(64, 48), Map: cam, Caption: "dog 0.55"},
	).Colormap(display.Viridis).Image()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(two.Bounds().Dx() == one.Bounds().Dx(), two.Bounds().Dy() > one.Bounds().Dy()+48)
	// Output:
	// true true
}

func ExampleColorbar() {
	img, err := display.Colorbar(display.Turbo, 0, 2.5).Height(300).Image()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds().Dy())
	// Output:
	// 300
}

func ExamplePixelGrid() {
	// A 28x28 MNIST digit would come from the IDX file; here a 3x2 patch.
	digit := &image.Gray{Pix: []uint8{0, 128, 255, 30, 60, 90}, Stride: 3, Rect: image.Rect(0, 0, 3, 2)}
	img, err := display.PixelGrid(digit).CellSize(40).Invert(true).Image()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Bounds())
	fmt.Println(img.At(5, 5)) // the cell of value 0, inverted to white paper
	// Output:
	// (0,0)-(121,81)
	// {255 255 255 255}
}

func ExampleSavePNG() {
	dir, err := os.MkdirTemp("", "display-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, "cam.png")
	if err := display.SavePNG(path, photo(4, 4)); err != nil {
		log.Fatal(err)
	}
	// A failed save leaves nothing behind.
	err = display.SavePNG(filepath.Join(dir, "empty.png"), image.NewRGBA(image.Rectangle{}))
	entries, _ := os.ReadDir(dir)
	fmt.Println(err != nil, len(entries), entries[0].Name())
	// Output:
	// true 1 cam.png
}

func ExampleShow() {
	img := photo(4, 4)
	// In a GoNB notebook cell this shows the picture. Elsewhere it writes
	// it into $CONVLENS_DISPLAY_DIR, or reports ErrNotNotebook.
	if err := display.Show(img); errors.Is(err, display.ErrNotNotebook) {
		if err := display.SavePNG("picture.png", img); err != nil {
			log.Fatal(err)
		}
	} else if err != nil {
		log.Fatal(err)
	}
}

func ExampleHeatmapChart() {
	cam := heatmap.Map{Width: 3, Height: 2, Values: []float32{0.1, 0.5, 0.9, 0.2, 0.4, 1}}
	page, err := display.HeatmapChart(cam).Title("layer4 Grad-CAM").
		ScriptURL("echarts.min.js"). // next to the page; or ScriptFile to inline it
		HTML()
	if err != nil {
		log.Fatal(err)
	}
	// Each cell is [column, row, value].
	fmt.Println(strings.Contains(page, "[2,1,1]"), strings.Contains(page, `<script src="echarts.min.js">`))
	// Output:
	// true true
}

func ExampleChart_IFrame() {
	c := display.TopKChart([]float32{0.05, 0.87, 0.08}, []string{"dog", "cat", "fox"}, 2).
		ScriptURL("https://cdn.example/echarts.min.js")
	frag, err := c.IFrame()
	if err != nil {
		log.Fatal(err)
	}
	// The whole page travels, escaped, in the srcdoc attribute.
	fmt.Println(frag[:37])
	fmt.Println(strings.Contains(frag, "cat (1)"))
	// Output:
	// <iframe srcdoc="&lt;!DOCTYPE html&gt;
	// true
}

func ExampleLayerChart() {
	layers := []string{"conv1", "layer1", "layer2", "layer3", "layer4"}
	c := display.LayerChart(layers,
		display.Series{Name: "blank channels", Values: []float64{0, 0.02, 0.05, 0.2, 0.41}},
	).Title("Blank feature maps by depth").Axes("layer", "fraction").ScriptURL("echarts.min.js")
	var b strings.Builder
	if err := c.RenderHTML(&b); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Contains(b.String(), `"symbol":"circle"`))
	// Output:
	// true
}
