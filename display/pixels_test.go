package display

import (
	"image"
	"image/color"
	"testing"
)

func TestTextColorContrast(t *testing.T) {
	// WCAG 2: black text wins when (L+0.05)/0.05 >= 1.05/(L+0.05), that is
	// L >= 0.1791. Grey 117 has L = ((117/255+0.055)/1.055)^2.4 = 0.1779,
	// grey 118 has L = 0.1812.
	for g, want := range map[uint8]uint8{0: 255, 50: 255, 117: 255, 118: 0, 128: 0, 255: 0} {
		if got := textColorOn(g).Y; got != want {
			t.Errorf("text on grey %d is %d, want %d", g, got, want)
		}
	}
}

func TestPixelGrid(t *testing.T) {
	values := []uint8{
		0, 255, 117,
		118, 200, 30,
	}
	src := &image.Gray{Pix: values, Stride: 3, Rect: image.Rect(0, 0, 3, 2)}
	// An offset origin must not matter.
	src.Rect = src.Rect.Add(image.Pt(4, 7))
	const c = 24
	for _, invert := range []bool{false, true} {
		img, err := PixelGrid(src).CellSize(c).Invert(invert).Image()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := img.Bounds(), image.Rect(0, 0, 3*c+1, 2*c+1); got != want {
			t.Fatalf("bounds %v, want %v", got, want)
		}
		if !sameColor(img.At(0, 0), gridLineColor) || !sameColor(img.At(3*c, 2*c), gridLineColor) {
			t.Error("no grid line at the corners")
		}
		for i, v := range values {
			x, y := i%3, i/3
			shade := v
			if invert {
				shade = 255 - v
			}
			cell := image.Rect(x*c+1, y*c+1, (x+1)*c, (y+1)*c)
			// The cell's corner is background.
			if got := img.At(cell.Min.X+1, cell.Min.Y+1); !sameColor(got, color.Gray{shade}) {
				t.Errorf("invert=%v cell %d,%d background %v, want grey %d", invert, x, y, got, shade)
			}
			// The number is written in the contrasting colour: count pixels
			// of (nearly) that colour.
			text := textColorOn(shade).Y
			n := 0
			for py := cell.Min.Y; py < cell.Max.Y; py++ {
				for px := cell.Min.X; px < cell.Max.X; px++ {
					g := color.GrayModel.Convert(img.At(px, py)).(color.Gray).Y
					if absInt(int(g)-int(text)) < absInt(int(g)-int(shade)) {
						n++
					}
				}
			}
			if n < 5 {
				t.Errorf("invert=%v cell %d,%d (value %d): %d text pixels", invert, x, y, v, n)
			}
		}
	}
	// Three digits take more ink than one.
	one, _ := PixelGrid(&image.Gray{Pix: []uint8{1}, Stride: 1, Rect: image.Rect(0, 0, 1, 1)}).Image()
	three, _ := PixelGrid(&image.Gray{Pix: []uint8{188}, Stride: 1, Rect: image.Rect(0, 0, 1, 1)}).Invert(true).Image()
	if a, b := countLight(one), countInk(three, three.Bounds()); b <= a {
		t.Errorf("\"188\" drew %d pixels, \"1\" %d", b, a)
	}
}

func absInt(x int) int { return max(x, -x) }

func countLight(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y + 1; y < b.Max.Y-1; y++ {
		for x := b.Min.X + 1; x < b.Max.X-1; x++ {
			if color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y > 128 {
				n++
			}
		}
	}
	return n
}

func TestPixelGridErrors(t *testing.T) {
	small := image.NewGray(image.Rect(0, 0, 2, 2))
	for name, b := range map[string]*PixelGridBuilder{
		"nil":       PixelGrid(nil),
		"empty":     PixelGrid(image.NewGray(image.Rect(0, 0, 0, 0))),
		"too wide":  PixelGrid(image.NewGray(image.Rect(0, 0, MaxPixelGridSide+1, 1))),
		"tiny cell": PixelGrid(small).CellSize(MinPixelGridCell - 1),
	} {
		if img, err := b.Image(); err == nil || img != nil {
			t.Errorf("%s: want an error and no image, got %v", name, err)
		}
	}
}
