package gradcam_test

import (
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
)

// Bad arguments are errors naming the argument, never panics.
func TestBadArgumentsAreErrors(t *testing.T) {
	cam, err := gradcam.New(modeltest.Runner(t, modeltest.TinyNative())).Done()
	if err != nil {
		t.Fatal(err)
	}
	var nilCAM *gradcam.CAM
	for name, c := range map[string]struct {
		call func() error
		want string
	}{
		"New(nil)":               {func() error { _, err := gradcam.New(nil).Done(); return err }, "runner is nil"},
		"New(NewRunner(nil, m))": {func() error { _, err := gradcam.New(models.NewRunner(nil, nil)).Done(); return err }, "is nil"},
		"nil CAM":                {func() error { _, err := nilCAM.Explain(nil, gradcam.Top(1)); return err }, "the CAM is nil"},
		"Explain(nil)":           {func() error { _, err := cam.Explain(nil, gradcam.Top(1)); return err }, "the batch x is nil"},
		"NormalNoise(seed, -1)":  {func() error { _, err := gradcam.NormalNoise(1, -1); return err }, "n=-1 samples is negative"},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.call()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one with %q", err, c.want)
			}
		})
	}
}
