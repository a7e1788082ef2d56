package main

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
)

// accuracyCLI runs `convlens eval DATASET ...` through runAccuracy, on the pure-Go backend.
func accuracyCLI(t *testing.T, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	t.Setenv("GOMLX_BACKEND", "go")
	var out, errOut bytes.Buffer
	err = runAccuracy(args, &out, &errOut)
	return err, out.String(), errOut.String()
}

// TestAccuracyPrintsTheLibraryFigures: the CLI prints, as "name: value"
// lines, exactly what cmd/convlens/internal/evaluation computes (and its tests assert).
func TestAccuracyPrintsTheLibraryFigures(t *testing.T) {
	err, out, errOut := accuracyCLI(t, "mnist")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !regexp.MustCompile(`^accuracy: 0\.9[89]\d\d\n$`).MatchString(out) {
		t.Errorf("output %q", out)
	}
	figs, err := evaluation.Run("mnist", evaluation.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out != figs.String() {
		t.Errorf("CLI printed %q, the library computes %q", out, figs.String())
	}
}

func TestAccuracyRejects(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"imagenet"}, `unknown dataset "imagenet"; known datasets: mnist, lesions, cells`},
		{nil, "name a dataset: convlens eval mnist|lesions|cells"},
		{[]string{"--grey"}, "name a dataset"},
		{[]string{"mnist", "--grey"}, "flag provided but not defined: -grey"},
		{[]string{"mnist", "--images", "5"}, "flag provided but not defined: -images"},
		{[]string{"lesions", "--grey"}, "flag provided but not defined: -grey"},
		{[]string{"cells", "--shortcut"}, "flag provided but not defined: -shortcut"},
		{[]string{"cells", "--images", "-2"}, "--images -2"},
		{[]string{"cells", "extra"}, `unexpected argument "extra"`},
	} {
		err, _, _ := accuracyCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
}

func TestTrainRejects(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "name the model to train: convlens train mnist|lesions|cells"},
		{[]string{"imagenet"}, `unknown model "imagenet"; models that can be trained: mnist, lesions, cells`},
		{[]string{"cells", "--shortcut"}, "flag provided but not defined: -shortcut"},
		{[]string{"lesions", "--grey"}, "flag provided but not defined: -grey"},
		{[]string{"lesions", "--epochs", "-1"}, "--epochs must be at least 1"},
	} {
		var out, errOut bytes.Buffer
		err := runTrain(c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
