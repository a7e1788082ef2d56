package main

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/convlens/convlens/datasets/mnistdata"
)

// heldOutDigit writes the first held-out MNIST digit of class want as a PNG
// (the digit the demo shows for that class) and returns its path.
func heldOutDigit(t *testing.T, want int) string {
	t.Helper()
	held, err := mnistdata.HeldOut()
	if err != nil {
		t.Fatal(err)
	}
	for i := range held.Len() {
		if int(held.Labels[i]) != want {
			continue
		}
		g := image.NewGray(image.Rect(0, 0, 28, 28))
		copy(g.Pix, held.Image(i))
		path := filepath.Join(t.TempDir(), "digit"+string(rune('0'+want))+".png")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, g); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Fatalf("no held-out digit %d", want)
	return ""
}

// The demo's digit 3 has a blank Grad-CAM map at relu2 (every position's
// weighted sum is negative): cam says so on stderr, once, naming the image
// and what to try; the digit 0 beside it gets no note. HiResCAM at the same
// layer is not blank.
func TestCamNotesBlankMap(t *testing.T) {
	zero, three := heldOutDigit(t, 0), heldOutDigit(t, 3)
	code, _, stderr := convlens(t, "cam", "--model", "mnist", "--layer", "relu2", "--image", zero+","+three)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	notes := regexp.MustCompile(`(?m)^note: .*$`).FindAllString(stderr, -1)
	if len(notes) != 1 {
		t.Fatalf("%d notes, want 1 (for the 3): %q", len(notes), stderr)
	}
	for _, want := range []string{three, "class 3", "gradcam", "blank", "weighted sum", "--layer", "hirescam"} {
		if !strings.Contains(notes[0], want) {
			t.Errorf("the note lacks %q: %q", want, notes[0])
		}
	}
	code, _, stderr = convlens(t, "cam", "--model", "mnist", "--layer", "relu2", "--method", "hirescam", "--image", three)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "note:") {
		t.Errorf("HiResCAM's map is not blank, yet: %q", stderr)
	}
}

// The report shows the note in place of an empty overlay.
func TestReportNotesBlankMap(t *testing.T) {
	three := heldOutDigit(t, 3)
	out := filepath.Join(t.TempDir(), "report.html")
	code, _, stderr := convlens(t, "report", "--model", "mnist", "--layer", "relu2", "--image", three, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	if !strings.Contains(page, `<p class="warning">The heat map is blank for this class: every position&#39;s weighted sum`) {
		t.Errorf("the report has no blank-map note")
	}
	if strings.Contains(page, `alt="heat map over the image"`) {
		t.Errorf("the report still shows the empty overlay")
	}
}
