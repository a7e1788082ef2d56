package featuremaps_test

import (
	"strings"
	"testing"

	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
)

// Bad arguments are errors naming the argument, never panics.
func TestBadArgumentsAreErrors(t *testing.T) {
	r := modeltest.Runner(t, modeltest.TinyNative())
	for name, c := range map[string]struct {
		call func() error
		want string
	}{
		"Extract(nil runner)":          {func() error { _, err := featuremaps.Extract(nil, nil); return err }, "runner is nil"},
		"Extract(NewRunner(nil, nil))": {func() error { _, err := featuremaps.Extract(models.NewRunner(nil, nil), nil); return err }, "is nil"},
		"Extract(r, nil)":              {func() error { _, err := featuremaps.Extract(r, nil); return err }, "the batch x is nil"},
		"ExtractImages(nil runner)":    {func() error { _, err := featuremaps.ExtractImages(nil, nil); return err }, "runner is nil"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := c.call(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one with %q", err, c.want)
			}
		})
	}
}
