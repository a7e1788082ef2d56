package evaluation

import (
	"math"
	"strings"
	"testing"
)

// figures runs an evaluation as `convlens eval` does and logs what it prints.
func figures(t *testing.T, dataset string, opt Options) Figures {
	t.Helper()
	f, err := Run(dataset, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("convlens eval %s %+v:\n%s", dataset, opt, f)
	return f
}

func get(t *testing.T, f Figures, name string) float64 {
	t.Helper()
	v, ok := f.Get(name)
	if !ok || math.IsNaN(v) {
		t.Fatalf("no figure %s in\n%s", name, f)
	}
	return v
}

func TestMNISTAccuracy(t *testing.T) {
	if acc := get(t, figures(t, "mnist", Options{}), "accuracy"); acc < 0.985 {
		t.Errorf("MNIST held-out accuracy %.4f < 0.985", acc)
	}
}

// TestLesions asserts the figures for the embedded lesion model on
// the 500 held-out images `convlens eval lesions` uses.
func TestLesions(t *testing.T) {
	f := figures(t, "lesions", Options{})
	if v := get(t, f, "accuracy"); v < 0.95 {
		t.Errorf("accuracy %.4f < 0.95", v)
	}
	if v := get(t, f, "pointing_game"); v < 0.90 {
		t.Errorf("pointing game %.4f < 0.90", v)
	}
	if v := get(t, f, "energy_in_mask"); v < 0.60 {
		t.Errorf("energy in the lesion mask %.4f < 0.60", v)
	}
	// The ruler is a distractor for this model.
	if v := get(t, f, "energy_on_ruler"); v > 0.05 {
		t.Errorf("energy on the ruler %.4f > 0.05", v)
	}
}

// TestLesionsShortcut: the shortcut model does well while the ruler marks
// the suspicious lesions, fails when it does not, and Grad-CAM shows it
// looking at the ruler.
func TestLesionsShortcut(t *testing.T) {
	f := figures(t, "lesions", Options{Shortcut: true})
	corr, uncorr, rev := get(t, f, "accuracy"), get(t, f, "accuracy_uncorrelated"), get(t, f, "accuracy_reversed")
	if corr < 0.95 {
		t.Errorf("accuracy with the correlation %.4f < 0.95", corr)
	}
	if uncorr > 0.8 || rev > 0.5 {
		t.Errorf("without the correlation the accuracy is still %.4f, reversed %.4f", uncorr, rev)
	}
	if v := get(t, f, "energy_on_ruler"); v < 0.3 {
		t.Errorf("energy on the ruler %.4f < 0.3", v)
	}
}

func TestCells(t *testing.T) {
	colour := get(t, figures(t, "cells", Options{}), "accuracy")
	grey := get(t, figures(t, "cells", Options{Grey: true}), "accuracy")
	if colour < 0.97 {
		t.Errorf("colour model accuracy %.4f < 0.97", colour)
	}
	if grey > colour-0.1 {
		t.Errorf("grey model accuracy %.4f is not clearly below the colour model's %.4f", grey, colour)
	}
}

func TestRunRejects(t *testing.T) {
	for _, c := range []struct {
		dataset string
		opt     Options
		want    string
	}{
		{"imagenet", Options{}, `unknown dataset "imagenet"; known datasets: mnist, lesions, cells`},
		{"mnist", Options{Grey: true}, "--grey applies to cells only"},
		{"cells", Options{Shortcut: true}, "--shortcut applies to lesions only"},
		{"cells", Options{Images: -1}, "-1 images"},
	} {
		if _, err := Run(c.dataset, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%q, %+v): %v, want %q", c.dataset, c.opt, err, c.want)
		}
	}
}

func TestFiguresString(t *testing.T) {
	if s := (Figures{{"accuracy", 0.98765}, {"energy_in_mask", 0.7}}).String(); s != "accuracy: 0.9877\nenergy_in_mask: 0.7000\n" {
		t.Errorf("printed %q", s)
	}
}
