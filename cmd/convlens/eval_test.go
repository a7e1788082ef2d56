package main

import (
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
)

func TestEvalMetrics(t *testing.T) {
	base := []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--metric", "deletion", "--steps", "8", "--compare-random"},
			[]string{"deletion, gradcam maps: area under the class probability over 9 points", "deletion, random maps", "image 2: class 5, AUC "}},
		{[]string{"--metric", "insertion", "--steps", "8", "--method", "layercam"},
			[]string{"insertion, layercam maps", "(higher is more faithful)", "mean AUC "}},
		{[]string{"--metric", "drop", "--method", "gradcam++", "--logits"},
			[]string{"drop, gradcam++ maps: class logit", "average drop "}},
		{[]string{"--metric", "road", "--percentiles", "20,60"},
			[]string{"percent\tMoRF\tLeRF\n20\t", "\n60\t", "gap LeRF - MoRF "}},
		{[]string{"--metric", "sanity", "--seed", "3"},
			[]string{"randomised weights (seed 3)", "image 1: similarity ", "mean similarity "}},
	} {
		t.Run(c.args[1], func(t *testing.T) {
			code, out, errOut := convlens(t, append(base, c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// On the tiny fixture Grad-CAM beats random maps on deletion: its AUC is lower.
func TestEvalDeletionSeparatesGradCAMFromRandom(t *testing.T) {
	code, out, errOut := convlens(t, "eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast,
		"--metric", "deletion", "--steps", "16", "--compare-random", "--seed", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`mean AUC ([0-9.]+)`).FindAllStringSubmatch(out, -1)
	if len(m) != 2 {
		t.Fatalf("want two mean AUCs:\n%s", out)
	}
	cam, _ := strconv.ParseFloat(m[0][1], 64)
	random, _ := strconv.ParseFloat(m[1][1], 64)
	t.Logf("deletion AUC: gradcam %.4f, random %.4f", cam, random)
	if cam >= random {
		t.Errorf("Grad-CAM's deletion AUC %.4f is not below a random map's %.4f", cam, random)
	}
}

func TestCamMethodAllWritesOnePanel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "all.png")
	code, stdout, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--method", "all", "--out-png", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "image 2: predicted class 5") {
		t.Errorf("stdout %q", stdout)
	}
	if !strings.Contains(errOut, "scorecam: 96 forward passes of one image") {
		t.Errorf("stderr does not announce Score-CAM's cost:\n%s", errOut)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	rows := 3 * len(gradcam.MethodNames())
	if cfg.Height < rows*64 {
		t.Errorf("panel is %dx%d, want at least %d rows of 64 pixels", cfg.Width, cfg.Height, rows)
	}
}

func TestCamEveryMethod(t *testing.T) {
	for _, name := range gradcam.MethodNames() {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "cam.npy")
			code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--method", name, "--out-npy", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
		})
	}
}

func TestEvalAndMethodBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no metric", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast}, "--metric is required: deletion, insertion, drop, road, sanity"},
		{"unknown metric", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "fidelity"}, `unknown --metric "fidelity"; available: deletion`},
		{"unknown method", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "drop", "--method", "gradcam+++"}, `unknown method "gradcam+++"; known methods: ablationcam, eigencam`},
		{"no input", []string{"eval", "--model", tinyModel, "--layer", tinyLast, "--metric", "drop"}, "give --image IMG or --input X.npy"},
		{"bad steps", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "deletion", "--steps", "0"}, "--steps 0"},
		{"bad batch", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "deletion", "--batch", "0"}, "--batch 0"},
		{"bad percentile", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "road", "--percentiles", "50,100"}, "ROAD percentile 100"},
		{"percentile not a number", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "road", "--percentiles", "half"}, `--percentiles: "half" is not a number`},
		{"class out of range", []string{"eval", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--metric", "drop", "--class", "12"}, "class index 12 is out of range"},
		{"cam unknown method", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--method", "gradcam+++"}, `unknown --method "gradcam+++"; available: ablationcam,`},
		{"all without png", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--method", "all"}, "--method all draws one comparison panel: give --out-png"},
		{"all with npy", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--method", "all", "--out-png", filepath.Join(dir, "a.png"), "--out-npy", filepath.Join(dir, "a.npy")}, "--method all writes only the --out-png panel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, errOut := convlens(t, c.args...)
			if code == 0 {
				t.Fatalf("exit 0; stdout %q", stdout)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if msg := lines[len(lines)-1]; !strings.Contains(msg, c.want) {
				t.Errorf("message %q lacks %q", msg, c.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left behind: %v", entries)
	}
}

// Without --layer, eval measures the maps at the last layer with spatial axes
// and names it on stderr.
func TestEvalDefaultLayer(t *testing.T) {
	code, stdout, errOut := convlens(t, "eval", "--model", tinyModel, "--input", tinyInput, "--metric", "drop")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "no --layer given; using the last layer with spatial axes, "+tinyLast) {
		t.Errorf("stderr does not name the layer chosen:\n%s", errOut)
	}
	if stdout == "" {
		t.Error("no figures on stdout")
	}
}
