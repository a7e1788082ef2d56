package main

import (
	"encoding/json"
	"errors"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
)

// TestMain lets the interrupt tests run this test binary as the convlens
// command itself, signal handling included.
func TestMain(m *testing.M) {
	if os.Getenv("CONVLENS_TEST_AS_COMMAND") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// temporaries lists the staging files and folders left in dir.
func temporaries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") || strings.HasPrefix(e.Name(), ".convlens-") {
			left = append(left, e.Name())
		}
	}
	return left
}

func writeOld(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("old"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func isOld(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(b) == "old"
}

// A cam whose --out-png cannot be written leaves --out-npy as it was.
func TestCamFailureKeepsEveryOldOutput(t *testing.T) {
	dir := t.TempDir()
	outNPY := filepath.Join(dir, "cam.npy")
	writeOld(t, outNPY, 0o600)
	for _, outPNG := range []string{filepath.Join(dir, "missing", "overlay.png"), dir} {
		code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast,
			"--out-npy", outNPY, "--out-png", outPNG)
		if code != 1 || !strings.Contains(errOut, outPNG) {
			t.Errorf("--out-png %s: exit %d, stderr %q", outPNG, code, errOut)
		}
		if !isOld(outNPY) {
			t.Errorf("--out-png %s: --out-npy was replaced", outPNG)
		}
		if left := temporaries(t, dir); len(left) > 0 {
			t.Errorf("--out-png %s: left %v", outPNG, left)
		}
	}
}

// Two outputs on one file are refused before anything runs, however the
// path is spelt.
func TestCamRefusesOneFileForTwoOutputs(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Symlink("out", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{out, filepath.Join(dir, ".", "out"), filepath.Join(dir, "link")} {
		// A missing model shows that the paths are checked first.
		code, stdout, errOut := convlens(t, "cam", "--model", filepath.Join(dir, "none.onnx"), "--input", tinyInput,
			"--out-npy", out, "--out-png", other)
		want := "--out-npy " + out + " and --out-png " + other + " are the same file; give each output its own path"
		if code != 2 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 || stdout != "" {
			t.Errorf("--out-png %s: exit %d, stderr %q; want exit 2 and %q", other, code, errOut, want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("--out-png %s: an output was written", other)
		}
	}
}

// whole checks that an output file decodes to the end.
func whole(path string) error {
	switch filepath.Ext(path) {
	case ".npy":
		_, _, err := npy.ReadFloat32(path)
		return err
	case ".png":
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = png.Decode(f)
		return err
	}
	b, err := os.ReadFile(path)
	if err == nil && !json.Valid(b) {
		err = errors.New("not valid JSON")
	}
	return err
}
