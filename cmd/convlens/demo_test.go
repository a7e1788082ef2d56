package main

import (
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// convlens demo writes a page whose every picture exists and decodes, with
// the figures the prose promises.
func TestDemoWritesPageAndPictures(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	code, out, errOut := convlens(t, "demo", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, filepath.Join(dir, "index.html")) {
		t.Errorf("stdout %q does not say where the page is", out)
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	srcs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(srcs) < 7 {
		t.Fatalf("page shows %d pictures, want the pixel view, three feature grids, Grad-CAM on digits, the lesions and the shortcut", len(srcs))
	}
	for _, s := range srcs {
		f, err := os.Open(filepath.Join(dir, s[1]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", s[1], err)
		}
		f.Close()
	}
	for _, want := range []string{
		`Blank channels by depth, for this digit: relu1 \d+%`,
		`classifies \d+ of these 10 digits correctly`,
		`On 500 held-out images: accuracy 0\.9\d+, pointing game 0\.9\d+, energy in mask 0\.[6-9]\d+`,
		`accuracy uncorrelated 0\.[0-6]\d+, accuracy reversed 0\.\d+, energy on ruler 0\.[3-9]`,
	} {
		if !regexp.MustCompile(want).Match(page) {
			t.Errorf("page lacks %q", want)
		}
	}
	if code, _, _ := convlens(t, "demo"); code != 2 {
		t.Errorf("demo without --out: exit %d, want 2", code)
	}
}
