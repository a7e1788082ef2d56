package display

import (
	"encoding/json"
	"image"
	"image/color"
	"os"
	"testing"

	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/testutil"
)

// overlayCase is one case of testdata/overlay_cases.json, computed with
// OpenCV the way pytorch-grad-cam's show_cam_on_image does.
type overlayCase struct {
	Colormap string  `json:"colormap"`
	Alpha    float64 `json:"alpha"`
	Base     struct {
		Width  int     `json:"width"`
		Height int     `json:"height"`
		RGB    []uint8 `json:"rgb"`
	} `json:"base"`
	Map struct {
		Width  int       `json:"width"`
		Height int       `json:"height"`
		Values []float32 `json:"values"`
	} `json:"map"`
	Resized []float32 `json:"resized"`
	Overlay []uint8   `json:"overlay"`
}

func loadOverlayCases(t *testing.T) []overlayCase {
	t.Helper()
	data, err := os.ReadFile("testdata/overlay_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []overlayCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no overlay cases")
	}
	return cases
}

func rgbImage(w, h int, rgb []uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		copy(img.Pix[4*i:], rgb[3*i:3*i+3])
		img.Pix[4*i+3] = 0xff
	}
	return img
}

// TestOverlayMatchesReference compares resize and overlay with OpenCV's
// cv2.resize and a show_cam_on_image computed in numpy.
func TestOverlayMatchesReference(t *testing.T) {
	for i, tc := range loadOverlayCases(t) {
		cmap, err := ColormapByName(tc.Colormap)
		if err != nil {
			t.Fatal(err)
		}
		m := heatmap.Map{Width: tc.Map.Width, Height: tc.Map.Height, Values: tc.Map.Values}
		resized, err := m.Resize(tc.Base.Width, tc.Base.Height)
		if err != nil {
			t.Fatal(err)
		}
		if len(resized.Values) != len(tc.Resized) || testutil.MaxAbsDiff(resized.Values, tc.Resized) > 2e-6 {
			t.Errorf("case %d: Resize differs from cv2.resize:\n got %v\nwant %v", i, resized.Values, tc.Resized)
		}

		// Shift the base image's origin: the result must not depend on it.
		base := rgbImage(tc.Base.Width, tc.Base.Height, tc.Base.RGB)
		base.Rect = base.Rect.Add(image.Pt(5, -3))
		img, err := Overlay(base, m).Colormap(cmap).Alpha(tc.Alpha).Image()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := img.Bounds(), image.Rect(0, 0, tc.Base.Width, tc.Base.Height); got != want {
			t.Fatalf("case %d: bounds %v, want %v", i, got, want)
		}
		rgba := img.(*image.RGBA)
		worst, differ := 0, 0
		for p := 0; p < tc.Base.Width*tc.Base.Height; p++ {
			for k := 0; k < 3; k++ {
				d := int(rgba.Pix[4*p+k]) - int(tc.Overlay[3*p+k])
				d = max(d, -d)
				worst = max(worst, d)
				if d > 0 {
					differ++
				}
			}
			if rgba.Pix[4*p+3] != 0xff {
				t.Fatalf("case %d: pixel %d not opaque", i, p)
			}
		}
		// Truncating float32 values to 8 bits: a last-bit difference in the
		// resize (Go and OpenCV order their float operations differently)
		// can move a value across an integer.
		if worst > 1 {
			t.Errorf("case %d (%s, alpha %g): max channel error %d, want <= 1", i, tc.Colormap, tc.Alpha, worst)
		}
		t.Logf("case %d (%s, alpha %g): max channel error %d, %d of %d channels differ",
			i, tc.Colormap, tc.Alpha, worst, differ, 3*tc.Base.Width*tc.Base.Height)
	}
}

// TestOverlayFormula checks a few pixels against the blend formula worked
// out by hand.
func TestOverlayFormula(t *testing.T) {
	// Two pixels: grey (100,100,100) under value 0 and white under value 1.
	base := image.NewRGBA(image.Rect(0, 0, 2, 1))
	base.Set(0, 0, color.RGBA{100, 100, 100, 255})
	base.Set(1, 0, color.RGBA{255, 255, 255, 255})
	m := heatmap.Map{Width: 2, Height: 1, Values: []float32{0, 1}}
	img, err := Overlay(base, m).Alpha(0.25).Image()
	if err != nil {
		t.Fatal(err)
	}
	// Jet(0) = (0,0,128), Jet(1) = (128,0,0). Blend 0.25*heat + 0.75*image:
	//   pixel 0: (0.75*100/255, same, 0.25*128/255 + 0.75*100/255)
	//          = (0.294118, 0.294118, 0.419608)
	//   pixel 1: (0.25*128/255 + 0.75, 0.75, 0.75) = (0.875490, 0.75, 0.75)
	// The maximum, 0.875490, becomes 1; then 8 bits by truncation:
	//   pixel 0: 255*(0.294118, 0.294118, 0.419608)/0.875490 = (85.67, 85.67, 122.22)
	//   pixel 1: (255, 218.45, 218.45)
	want := []color.RGBA{{85, 85, 122, 255}, {255, 218, 218, 255}}
	for x, w := range want {
		if got := img.At(x, 0); got != w {
			t.Errorf("pixel %d = %v, want %v", x, got, w)
		}
	}

	// Alpha 0 leaves the image, brightened so its maximum is 255: here a
	// uniform (51, 102, 204) becomes (63, 127, 255) (51*255/204 = 63.75,
	// 102*255/204 = 127.5).
	uni := image.NewUniform(color.RGBA{51, 102, 204, 255})
	img, err = Overlay(&uniformImage{uni, image.Rect(0, 0, 3, 3)}, heatmap.Map{Width: 1, Height: 1, Values: []float32{0.3}}).
		Alpha(0).Image()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.At(1, 1), (color.RGBA{63, 127, 255, 255}); got != want {
		t.Errorf("alpha 0: %v, want %v", got, want)
	}
	// Alpha 1 is the heat map alone (already has a 255 channel).
	img, err = Overlay(&uniformImage{uni, image.Rect(0, 0, 3, 3)}, heatmap.Map{Width: 1, Height: 1, Values: []float32{0.5}}).
		Alpha(1).Image()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.At(2, 0), Jet.Index(127); got != want {
		t.Errorf("alpha 1: %v, want Jet entry 127 %v", got, want)
	}
}

// uniformImage is a uniform colour with finite bounds.
type uniformImage struct {
	*image.Uniform
	r image.Rectangle
}

func (u *uniformImage) Bounds() image.Rectangle { return u.r }

func TestOverlayRange(t *testing.T) {
	base := image.NewRGBA(image.Rect(0, 0, 4, 4))
	m := heatmap.Map{Width: 2, Height: 1, Values: []float32{10, 20}}
	a, err := Overlay(base, m).Range(10, 20).Image()
	if err != nil {
		t.Fatal(err)
	}
	n := heatmap.Map{Width: 2, Height: 1, Values: []float32{0, 1}}
	b, err := Overlay(base, n).Image()
	if err != nil {
		t.Fatal(err)
	}
	if string(a.(*image.RGBA).Pix) != string(b.(*image.RGBA).Pix) {
		t.Error("Range(10, 20) on values 10..20 differs from the default range on 0..1")
	}
}

func TestHeatmap(t *testing.T) {
	m := heatmap.Map{Width: 3, Height: 1, Values: []float32{-1, 0.5, 2}}
	img, err := Heatmap(m).Colormap(Viridis).Image()
	if err != nil {
		t.Fatal(err)
	}
	want := []color.RGBA{Viridis.Index(0), Viridis.Index(127), Viridis.Index(255)}
	for x, w := range want {
		if got := img.At(x, 0); got != w {
			t.Errorf("pixel %d = %v, want %v", x, got, w)
		}
	}
	img, err = Heatmap(m).Size(6, 2).Image()
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 6, 2) {
		t.Errorf("Size(6, 2) gave bounds %v", img.Bounds())
	}
}

func TestOverlayErrors(t *testing.T) {
	base := image.NewRGBA(image.Rect(0, 0, 4, 4))
	good := heatmap.Map{Width: 2, Height: 2, Values: make([]float32, 4)}
	for name, b := range map[string]*OverlayBuilder{
		"nil base":    Overlay(nil, good),
		"empty base":  Overlay(image.NewRGBA(image.Rect(0, 0, 0, 3)), good),
		"bad map":     Overlay(base, heatmap.Map{Width: 2, Height: 2, Values: make([]float32, 3)}),
		"alpha > 1":   Overlay(base, good).Alpha(1.5),
		"alpha < 0":   Overlay(base, good).Alpha(-0.1),
		"range empty": Overlay(base, good).Range(1, 1),
		"range inf":   Overlay(base, good).Range(0, float32(inf())),
	} {
		if img, err := b.Image(); err == nil || img != nil {
			t.Errorf("%s: got (%v, %v), want an error and no image", name, img != nil, err)
		}
	}
}

func inf() float64 { var zero float64; return 1 / zero }

func TestOverlayShow(t *testing.T) {
	b := Overlay(randomImage(12, 8, 5), heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}).Alpha(0.4)
	testBuilderShow(t, b.Show, b.Image, Overlay(nil, heatmap.Map{}).Show)
}
