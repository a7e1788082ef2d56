package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/internal/testutil"
	"google.golang.org/protobuf/proto"
)

// A model whose file leaves height and width dynamic takes each batch at
// its images' own size, non-square included, or at --size; a fixed-size
// model keeps resizing and refuses --size.
func TestCamTakesAnySizeModelsAtTheImagesSize(t *testing.T) {
	dir := t.TempDir()
	b, err := proto.Marshal(testutil.SmallONNX(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "any.onnx")
	if err := os.WriteFile(model, b, 0o644); err != nil {
		t.Fatal(err)
	}
	writeImage := func(name string, w, h int) string {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, color.RGBA{uint8(7 * x), uint8(11 * y), uint8(x * y), 255})
			}
		}
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b2, square := writeImage("a.png", 40, 32), writeImage("b.png", 40, 32), writeImage("c.png", 24, 24)
	for _, c := range []struct {
		args  []string
		shape []int
	}{
		{[]string{"--image", a + "," + b2}, []int{2, 32, 40}},
		{[]string{"--image", square}, []int{1, 24, 24}},
		{[]string{"--image", a + "," + square, "--size", "20x16"}, []int{2, 16, 20}},
	} {
		out := filepath.Join(t.TempDir(), "maps.npy")
		args := append([]string{"cam", "--model", model, "--out-npy", out}, c.args...)
		if code, _, errOut := convlens(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, errOut)
		}
		_, shape, err := npy.ReadFloat32(out)
		if err != nil || !slices.Equal(shape, c.shape) {
			t.Errorf("%v: maps shaped %v (%v), want %v", c.args, shape, err, c.shape)
		}
	}
	code, _, errOut := convlens(t, "cam", "--model", model, "--image", a+","+square)
	if code != 1 || !strings.Contains(errOut, "one batch needs one size; give --size") {
		t.Errorf("two sizes in a batch: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = convlens(t, "cam", "--model", tinyModel, "--image", a, "--size", "32x32")
	if code != 2 || !strings.Contains(errOut, "its file fixes the size") {
		t.Errorf("--size on a fixed-size model: exit %d, stderr %q", code, errOut)
	}
}
