package main

import (
	"errors"
	"fmt"
	"image"
	"strconv"
	"strings"

	"github.com/convlens/convlens/models"
)

// sizeFlag is --size WxH, the image size for a model that takes any size.
type sizeFlag struct{ width, height int }

func (s *sizeFlag) String() string {
	if s.width == 0 {
		return ""
	}
	return fmt.Sprintf("%dx%d", s.width, s.height)
}

func (s *sizeFlag) Set(v string) error {
	w, h, ok := strings.Cut(strings.ToLower(strings.TrimSpace(v)), "x")
	width, errW := strconv.Atoi(w)
	height, errH := strconv.Atoi(h)
	if !ok || errW != nil || errH != nil || width < 1 || height < 1 {
		return fmt.Errorf("want WIDTHxHEIGHT, e.g. 224x224; got %q", v)
	}
	s.width, s.height = width, height
	return nil
}

const sizeUsage = "image size WIDTHxHEIGHT for a model that takes any size (default: the images' own size)"

// resizable is a model that takes any image size (see models.ONNX.SetSize).
type resizable interface {
	SetSize(height, width int) error
}

// fitSize sets the image size of a model that takes any size: --size when
// given, else the images' own size, which they must then share. A model of
// fixed size keeps it (images are resized to it) and refuses --size.
func fitSize(m models.Model, size sizeFlag, images []image.Point) error {
	r, ok := m.(resizable)
	if !ok || !m.Input().AnySize {
		if size.width != 0 {
			in := m.Input()
			return usageError{fmt.Errorf("--size: model %s takes %dx%d images only (its file fixes the size); images are resized to it", m.Name(), in.Width, in.Height)}
		}
		return nil
	}
	if size.width == 0 && len(images) > 0 {
		size.width, size.height = images[0].X, images[0].Y
		for i, p := range images {
			if p != images[0] {
				return fmt.Errorf("image %d is %dx%d and image 0 %dx%d: model %s takes any size, but one batch needs one size; give --size WIDTHxHEIGHT or one image at a time", i, p.X, p.Y, images[0].X, images[0].Y, m.Name())
			}
		}
	}
	if size.width == 0 {
		return errors.New("no image to take the size from")
	}
	return r.SetSize(size.height, size.width)
}

// imageSizes lists the images' sizes.
func imageSizes(images []image.Image) []image.Point {
	sizes := make([]image.Point, len(images))
	for i, img := range images {
		if img != nil {
			sizes[i] = img.Bounds().Size()
		}
	}
	return sizes
}
