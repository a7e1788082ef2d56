package display

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// readTable reads a 256-line "R G B" reference written by
// scripts/reference/gen_colormaps.py.
func readTable(t *testing.T, name string) [256]color.RGBA {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tab [256]color.RGBA
	sc := bufio.NewScanner(f)
	n := 0
	for ; sc.Scan(); n++ {
		if n >= 256 {
			t.Fatalf("%s: more than 256 lines", name)
		}
		var r, g, b uint8
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d", &r, &g, &b); err != nil {
			t.Fatalf("%s line %d: %v", name, n+1, err)
		}
		tab[n] = color.RGBA{r, g, b, 0xff}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 256 {
		t.Fatalf("%s: %d lines, want 256", name, n)
	}
	return tab
}

func channelDiff(a, b color.RGBA) int {
	d := 0
	for _, p := range [][2]uint8{{a.R, b.R}, {a.G, b.G}, {a.B, b.B}, {a.A, b.A}} {
		d = max(d, int(math.Abs(float64(p[0])-float64(p[1]))))
	}
	return d
}

// TestColormapsMatchReferences compares every table entry with
// cv2.applyColorMap and matplotlib.
func TestColormapsMatchReferences(t *testing.T) {
	for _, tc := range []struct {
		cmap    Colormap
		file    string
		maxDiff int // largest channel error allowed
	}{
		// OpenCV's own tables: exact.
		{Jet, "jet_opencv.txt", 0},
		{Viridis, "viridis_opencv.txt", 0},
		{Turbo, "turbo_opencv.txt", 0},
		// matplotlib's bytes=True truncates 255*v where OpenCV (and this
		// package) rounds, so it can be one level lower.
		{Viridis, "viridis_matplotlib.txt", 1},
		{Turbo, "turbo_matplotlib.txt", 1},
		// matplotlib's "gray" computes i/255 in floating point and
		// truncates, so e.g. entry 90 comes out 89; Grey is the identity.
		{Grey, "gray_matplotlib.txt", 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ref := readTable(t, tc.file)
			worst, count := 0, 0
			for i := range ref {
				d := channelDiff(tc.cmap.Index(uint8(i)), ref[i])
				worst = max(worst, d)
				if d > 0 {
					count++
				}
				if d > tc.maxDiff {
					t.Errorf("%s entry %d = %v, reference %v", tc.cmap, i, tc.cmap.Index(uint8(i)), ref[i])
				}
			}
			t.Logf("%s vs %s: max channel error %d, %d entries differ", tc.cmap, tc.file, worst, count)
		})
	}
}

func TestColormapAtQuantizesLikeShowCamOnImage(t *testing.T) {
	// np.uint8(255 * mask) for float32 masks: floor(255*v).
	for _, tc := range []struct {
		v    float64
		want uint8
	}{
		{0, 0}, {-0.5, 0}, {math.NaN(), 0}, {1, 255}, {7, 255}, {math.Inf(1), 255},
		{0.5, 127},         // 127.5 truncated
		{1.0 / 255, 1},     // float32(255*float32(1/255)) = 1
		{0.999, 254},       // 254.745
		{127.0 / 255, 127}, // exactly representable product
		{0.0039, 0},        // 0.9945
		{float64(float32(0.2)), 51},
	} {
		if got, want := Jet.At(tc.v), Jet.Index(tc.want); got != want {
			t.Errorf("Jet.At(%v) = %v, want entry %d = %v", tc.v, got, tc.want, want)
		}
	}
}

func TestColormapByName(t *testing.T) {
	for _, name := range []string{"jet", "JET", " viridis ", "Turbo", "grey", "gray"} {
		c, err := ColormapByName(name)
		if err != nil {
			t.Errorf("ColormapByName(%q): %v", name, err)
			continue
		}
		if _, err := ColormapByName(c.Name()); err != nil {
			t.Errorf("name %q of %q not accepted back: %v", c.Name(), name, err)
		}
	}
	if c, _ := ColormapByName("gray"); c.Name() != "grey" {
		t.Errorf("gray is %q, want the grey colormap", c.Name())
	}
	if _, err := ColormapByName("rainbow"); err == nil {
		t.Error("ColormapByName(rainbow) succeeded, want an error")
	}
	got := fmt.Sprint(ColormapNames())
	if want := "[grey jet turbo viridis]"; got != want {
		t.Errorf("ColormapNames() = %s, want %s", got, want)
	}
}

func TestZeroColormapIsGrey(t *testing.T) {
	var zero Colormap
	for i := 0; i < 256; i++ {
		if zero.Index(uint8(i)) != Grey.Index(uint8(i)) {
			t.Fatalf("zero Colormap entry %d = %v, want %v", i, zero.Index(uint8(i)), Grey.Index(uint8(i)))
		}
	}
	if zero.Name() != "grey" {
		t.Errorf("zero Colormap name %q", zero.Name())
	}
}
