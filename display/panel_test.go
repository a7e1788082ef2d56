package display

import (
	"image"
	"image/color"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/convlens/convlens/heatmap"
)

// randomImage returns an opaque image of random colours, which will not
// occur by chance elsewhere in a composed picture.
func randomImage(w, h int, seed uint64) *image.RGBA {
	rng := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 0xff
		}
	}
	return img
}

// findImage returns where small occurs in big, pixel for pixel.
func findImage(big, small image.Image) (image.Point, bool) {
	bb, sb := big.Bounds(), small.Bounds()
	for y := bb.Min.Y; y+sb.Dy() <= bb.Max.Y; y++ {
	next:
		for x := bb.Min.X; x+sb.Dx() <= bb.Max.X; x++ {
			for sy := 0; sy < sb.Dy(); sy++ {
				for sx := 0; sx < sb.Dx(); sx++ {
					if !sameColor(big.At(x+sx, y+sy), small.At(sb.Min.X+sx, sb.Min.Y+sy)) {
						continue next
					}
				}
			}
			return image.Pt(x, y), true
		}
	}
	return image.Point{}, false
}

func sameColor(a, b color.Color) bool {
	r1, g1, b1, a1 := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2 && a1 == a2
}

// isInk reports whether c is dark: text drawn on white.
func isInk(c color.Color) bool {
	r, g, b := rgb8(c)
	return int(r)+int(g)+int(b) < 3*128
}

func countInk(img image.Image, r image.Rectangle) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if isInk(img.At(x, y)) {
				n++
			}
		}
	}
	return n
}

func allWhite(img image.Image, r image.Rectangle) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if !sameColor(img.At(x, y), color.White) {
				return false
			}
		}
	}
	return true
}

// nearestEntry returns the index of the table entry closest to c.
func nearestEntry(cm Colormap, c color.Color) int {
	r, g, b := rgb8(c)
	best, bestD := 0, 1<<30
	for i := 0; i < 256; i++ {
		e := cm.Index(uint8(i))
		d := sq(int(e.R)-int(r)) + sq(int(e.G)-int(g)) + sq(int(e.B)-int(b))
		if d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

func sq(x int) int { return x * x }

func TestColorbar(t *testing.T) {
	img, err := Colorbar(Turbo, -0.25, 1.5).Height(200).Image()
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dy() != 200 || b.Dx() < colorbarWidth+10 {
		t.Fatalf("colour bar bounds %v", b)
	}
	// Down the middle of the strip the colours run from the top of the
	// colormap to the bottom, never going back up.
	x := 1 + colorbarWidth/2
	var seen []int
	for y := 0; y < b.Dy(); y++ {
		c := img.At(x, y)
		if allWhite(img, image.Rect(x, y, x+1, y+1)) || isInk(c) && nearestEntry(Turbo, c) < 5 && y < 20 {
			continue // margin or frame
		}
		seen = append(seen, nearestEntry(Turbo, c))
	}
	if len(seen) < 150 {
		t.Fatalf("strip only %d rows tall", len(seen))
	}
	// Skip the frame rows at both ends.
	strip := seen[1 : len(seen)-1]
	if strip[0] < 250 || strip[len(strip)-1] > 5 {
		t.Errorf("strip runs from entry %d to %d, want about 255 to 0", strip[0], strip[len(strip)-1])
	}
	for i := 1; i < len(strip); i++ {
		if strip[i] > strip[i-1] {
			t.Errorf("strip goes up from entry %d to %d at row %d", strip[i-1], strip[i], i)
			break
		}
	}
	// Labels: ink right of the strip near the top, middle and bottom.
	labels := image.Rect(colorbarWidth+2+tickLength+2, 0, b.Dx(), b.Dy())
	for _, band := range []image.Rectangle{
		{image.Pt(labels.Min.X, 0), image.Pt(labels.Max.X, 25)},
		{image.Pt(labels.Min.X, 88), image.Pt(labels.Max.X, 112)},
		{image.Pt(labels.Min.X, 175), image.Pt(labels.Max.X, 200)},
	} {
		if countInk(img, band) < 10 {
			t.Errorf("no label text in %v", band)
		}
	}
	if _, err := Colorbar(Jet, 1, 0).Image(); err == nil {
		t.Error("Colorbar with lo > hi succeeded")
	}
	if _, err := Colorbar(Jet, 0, 1).Height(10).Image(); err == nil {
		t.Error("Colorbar of height 10 succeeded")
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 1: "1", 0.5: "0.5", -0.25: "-0.25", 1.5: "1.5", 0.12345: "0.123",
		123.456: "123", 1234.5: "1230", 0.000123: "1.23e-04", 2e6: "2.00e+06",
	} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestPanelLayout(t *testing.T) {
	const w, h = 120, 114 // at least minPanelSide, so drawn as is
	base := randomImage(w, h, 1)
	m := heatmap.Map{Width: 3, Height: 2, Values: []float32{0, 0.2, 0.4, 0.6, 0.8, 1}}
	heat, err := Heatmap(m).Size(w, h).Image()
	if err != nil {
		t.Fatal(err)
	}
	ov, err := Overlay(base, m).Image()
	if err != nil {
		t.Fatal(err)
	}
	for _, caption := range []string{"", "tabby cat (281)  0.874"} {
		img, err := Panel(base, m).Caption(caption).Image()
		if err != nil {
			t.Fatal(err)
		}
		at, ok := findImage(img, base)
		if !ok {
			t.Fatalf("caption %q: image not found in panel", caption)
		}
		if at.X != margin {
			t.Errorf("image at x = %d, want the margin %d", at.X, margin)
		}
		if caption == "" && at.Y != margin {
			t.Errorf("without caption the image is at y = %d, want %d", at.Y, margin)
		}
		if caption != "" {
			if at.Y <= margin+8 {
				t.Errorf("with a caption the image is at y = %d, too high for a line of text", at.Y)
			}
			if countInk(img, image.Rect(margin, margin, img.Bounds().Dx(), at.Y)) < 30 {
				t.Error("no caption text above the image")
			}
		}
		heatAt := image.Pt(at.X+w+gap, at.Y)
		if got, ok := findImage(img, heat); !ok || got != heatAt {
			t.Errorf("heat map at %v (found %v), want %v", got, ok, heatAt)
		}
		ovAt := image.Pt(at.X+2*(w+gap), at.Y)
		if got, ok := findImage(img, ov); !ok || got != ovAt {
			t.Errorf("overlay at %v (found %v), want %v", got, ok, ovAt)
		}
		// Colour bar to the right of the overlay.
		cb := image.Rect(ovAt.X+w+gap, at.Y, img.Bounds().Dx()-margin, img.Bounds().Dy()-margin)
		if cb.Dx() < colorbarWidth || allWhite(img, cb) {
			t.Errorf("no colour bar in %v", cb)
		}
		// White margins all round.
		bb := img.Bounds()
		for _, r := range []image.Rectangle{
			image.Rect(0, 0, bb.Dx(), margin), image.Rect(0, bb.Dy()-margin, bb.Dx(), bb.Dy()),
			image.Rect(0, 0, margin, bb.Dy()), image.Rect(bb.Dx()-margin, 0, bb.Dx(), bb.Dy()),
		} {
			if !allWhite(img, r) {
				t.Errorf("margin %v not white", r)
			}
		}
	}
	noBar, err := Panel(base, m).Colorbar(false).Image()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := noBar.Bounds().Dx(), 2*margin+3*w+2*gap; got != want {
		t.Errorf("panel without colour bar is %d wide, want %d", got, want)
	}
}

func TestRows(t *testing.T) {
	const w, h = 120, 114 // at least minPanelSide, so drawn as is
	a, b := randomImage(w, h, 2), randomImage(w, h, 3)
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	img, err := Rows(
		Row{Image: a, Map: m, Caption: "tabby (281) 0.874"},
		Row{Image: b, Map: m, Caption: "tiger cat (282) 0.071"},
	).Colormap(Viridis).Image()
	if err != nil {
		t.Fatal(err)
	}
	pa, okA := findImage(img, a)
	pb, okB := findImage(img, b)
	if !okA || !okB {
		t.Fatalf("rows not found: %v %v", okA, okB)
	}
	if pa.X != margin || pb.X != margin || pb.Y < pa.Y+h+gap {
		t.Errorf("rows at %v and %v: want the second below the first", pa, pb)
	}
	// Headings above the first row's caption, and each caption above its row.
	if countInk(img, image.Rect(0, 0, img.Bounds().Dx(), pa.Y)) < 60 {
		t.Error("no headings and caption above the first row")
	}
	if countInk(img, image.Rect(0, pa.Y+h, img.Bounds().Dx(), pb.Y)) < 30 {
		t.Error("no caption above the second row")
	}
	ov, _ := Overlay(b, m).Colormap(Viridis).Image()
	if got, ok := findImage(img, ov); !ok || got != image.Pt(pb.X+2*(w+gap), pb.Y) {
		t.Errorf("second overlay at %v (found %v)", got, ok)
	}

	noHead, err := Rows(Row{Image: a, Map: m}).Headings(false).Image()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := findImage(noHead, a); p.Y != margin {
		t.Errorf("without headings or caption the row starts at y = %d, want %d", p.Y, margin)
	}

	if _, err := Rows().Image(); err == nil {
		t.Error("Rows() with no rows succeeded")
	}
	_, err = Rows(Row{Image: a, Map: m}, Row{Image: b, Map: heatmap.Map{Width: 2, Height: 2}}).Image()
	if err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("bad second row: error %v, want one naming row 1", err)
	}
	if _, err := Rows(Row{Image: a, Map: m}).Alpha(2).Image(); err == nil {
		t.Error("Rows with alpha 2 succeeded")
	}
}

// Pictures smaller than minPanelSide are enlarged by a whole factor: a 28×28
// digit is drawn 4× (112 pixels), each pixel a 4×4 block.
func TestPanelEnlargesSmallPictures(t *testing.T) {
	digit := randomImage(28, 28, 5)
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	img, err := Panel(digit, m).Colorbar(false).Image()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.Bounds().Dx(), 2*margin+3*112+2*gap; got != want {
		t.Fatalf("panel of a 28x28 image is %d wide, want %d", got, want)
	}
	big, err := scaleImage(digit, 112, 112)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findImage(img, big); !ok {
		t.Error("the 4x enlargement of the image is not in the panel")
	}
	if c := big.RGBAAt(7, 3); c != rgbaAt(digit, 1, 0) {
		t.Errorf("enlarged pixel (7,3) is %v, want source pixel (1,0) %v", c, rgbaAt(digit, 1, 0))
	}
}

func rgbaAt(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

func TestPanelShow(t *testing.T) {
	b := Panel(randomImage(12, 8, 5), heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}).Caption("cat (281)")
	testBuilderShow(t, b.Show, b.Image, Panel(randomImage(12, 8, 5), heatmap.Map{}).Show)
}

func TestRowsShow(t *testing.T) {
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	b := Rows(Row{Image: randomImage(12, 8, 5), Map: m, Caption: "a"}, Row{Image: randomImage(12, 8, 6), Map: m, Caption: "b"}).Colorbar(false)
	testBuilderShow(t, b.Show, b.Image, Rows().Show)
}
