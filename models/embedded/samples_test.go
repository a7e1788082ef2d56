package embedded_test

import (
	"testing"

	"github.com/convlens/convlens/models/embedded"
)

func TestLesionSamples(t *testing.T) {
	for _, shortcut := range []bool{false, true} {
		s, err := embedded.LesionSamples(8, shortcut)
		if err != nil {
			t.Fatal(err)
		}
		rulers := 0
		for i, x := range s {
			b := x.Image.Bounds()
			if b.Dx() != embedded.LesionsInput.Width || b.Dy() != embedded.LesionsInput.Height {
				t.Fatalf("shortcut=%v image %d is %v", shortcut, i, b)
			}
			if len(x.Mask) != b.Dx()*b.Dy() {
				t.Fatalf("mask of %d pixels", len(x.Mask))
			}
			if x.Label != i%2 {
				t.Errorf("image %d: label %d, want %d (the held-out set alternates)", i, x.Label, i%2)
			}
			in := 0
			for _, v := range x.Mask {
				if v {
					in++
				}
			}
			if in == 0 {
				t.Errorf("image %d: empty lesion mask", i)
			}
			if x.HasRuler() {
				rulers++
				if len(x.Ruler) != len(x.Mask) {
					t.Errorf("ruler mask of %d pixels", len(x.Ruler))
				}
			}
		}
		t.Logf("shortcut=%v: %d of 8 images show a ruler", shortcut, rulers)
	}
	again, _ := embedded.LesionSamples(1, false)
	first, _ := embedded.LesionSamples(2, false)
	if again[0].Label != first[0].Label || len(again[0].Mask) != len(first[0].Mask) {
		t.Error("samples are not deterministic")
	}
	if _, err := embedded.LesionSamples(0, false); err == nil {
		t.Error("n = 0 accepted")
	}
}

func TestCellSamples(t *testing.T) {
	s, err := embedded.CellSamples(4)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range s {
		if b := x.Image.Bounds(); b.Dx() != embedded.CellsInput.Width || b.Dy() != embedded.CellsInput.Height {
			t.Fatalf("image %d is %v", i, b)
		}
		if x.Label != i%2 || x.HasRuler() || len(x.Mask) != embedded.CellsInput.Width*embedded.CellsInput.Height {
			t.Errorf("image %d: label %d, ruler %v, mask %d", i, x.Label, x.HasRuler(), len(x.Mask))
		}
	}
	if _, err := embedded.CellSamples(-1); err == nil {
		t.Error("n = -1 accepted")
	}
}
