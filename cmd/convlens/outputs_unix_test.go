//go:build unix

package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A new output gets the mode os.Create gives under the umask; a replaced one
// keeps its own (a private report stays private).
func TestOutputsHonourUmaskAndKeepModes(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o027))
	dir := t.TempDir()
	newNPY, oldPNG, report := filepath.Join(dir, "cam.npy"), filepath.Join(dir, "overlay.png"), filepath.Join(dir, "r.html")
	writeOld(t, oldPNG, 0o664)
	writeOld(t, report, 0o600)
	if code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast,
		"--out-npy", newNPY, "--out-png", oldPNG); code != 0 {
		t.Fatalf("cam: exit %d: %s", code, errOut)
	}
	if code, _, errOut := convlens(t, "report", "--model", tinyModel, "--image", catImage, "--out", report); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	features := filepath.Join(dir, "features")
	if code, _, errOut := convlens(t, "features", "--model", tinyModel, "--input", tinyInput, "--layers", tinyLast, "--out", features); code != 0 {
		t.Fatalf("features: exit %d: %s", code, errOut)
	}
	for path, want := range map[string]fs.FileMode{
		newNPY: 0o640, oldPNG: 0o664, report: 0o600,
		features: fs.ModeDir | 0o750, filepath.Join(features, "stats.json"): 0o640,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
		}
		if isOld(path) {
			t.Errorf("%s was not replaced", filepath.Base(path))
		}
	}
}

// interrupt runs convlens as a process, sends it sig as soon as a staging
// file appears in dir, and returns its exit status and whether the signal
// was sent.
func interrupt(t *testing.T, sig os.Signal, dir string, args ...string) (code int, sent bool, stderr string) {
	t.Helper()
	cmd, errOut := startCommand(t, args...)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			return cmd.ProcessState.ExitCode(), sent, errOut.String()
		case <-tick.C:
			if !sent && len(temporaries(t, dir)) > 0 {
				sent = cmd.Process.Signal(sig) == nil
			}
		}
	}
}

// SIGINT or SIGTERM while outputs are being written removes every staging
// file and exits 128 + the signal's number; each output is then its old
// self or, had the commit already begun, whole.
func TestInterruptLeavesNoTemporaries(t *testing.T) {
	dir := t.TempDir()
	// A large picture makes its overlay slow to encode after the maps are staged.
	big := image.NewRGBA(image.Rect(0, 0, 3000, 2000))
	for i := range big.Pix {
		big.Pix[i] = uint8(i * 7 % 251)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, big); err != nil {
		t.Fatal(err)
	}
	bigImage := filepath.Join(t.TempDir(), "big.png")
	if err := os.WriteFile(bigImage, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	outNPY, outPNG := filepath.Join(dir, "cam.npy"), filepath.Join(dir, "overlay.png")
	features := filepath.Join(dir, "features")
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		// watch is the folder where staging files appear.
		watch string
		args  []string
		// outputs are checked to be old or whole.
		outputs []string
		// mustInterrupt: the command is slow enough that the signal always lands before it ends.
		mustInterrupt bool
	}{
		{"cam SIGINT", syscall.SIGINT, dir, []string{"cam", "--model", tinyModel, "--image", bigImage, "--layer", tinyLast, "--out-npy", outNPY, "--out-png", outPNG}, []string{outNPY, outPNG}, true},
		{"cam SIGTERM", syscall.SIGTERM, dir, []string{"cam", "--model", tinyModel, "--image", bigImage, "--layer", tinyLast, "--out-npy", outNPY, "--out-png", outPNG}, []string{outNPY, outPNG}, true},
		{"features SIGINT", syscall.SIGINT, features, []string{"features", "--model", tinyModel, "--input", tinyInput, "--layers", "all", "--per-page", "1", "--out", features}, []string{filepath.Join(features, "stats.json")}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.MkdirAll(c.watch, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, out := range c.outputs {
				writeOld(t, out, 0o644)
			}
			code, sent, errOut := interrupt(t, c.sig, c.watch, c.args...)
			if left := temporaries(t, c.watch); len(left) > 0 {
				t.Errorf("left %v", left)
			}
			switch {
			case !sent && c.mustInterrupt:
				t.Fatalf("no staging file seen; exit %d: %s", code, errOut)
			case code == 128+int(c.sig):
				if !strings.Contains(errOut, "convlens: stopped by") {
					t.Errorf("stderr %q does not say the command was stopped", errOut)
				}
			case code == 0 && !c.mustInterrupt:
			default:
				t.Fatalf("exit %d, want %d: %s", code, 128+int(c.sig), errOut)
			}
			for _, out := range c.outputs {
				if isOld(out) {
					continue
				}
				if c.mustInterrupt {
					t.Errorf("%s replaced by an interrupted command", filepath.Base(out))
				}
				if err := whole(out); err != nil {
					t.Errorf("%s is not whole: %v", out, err)
				}
			}
		})
	}
}
