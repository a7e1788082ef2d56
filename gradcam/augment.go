package gradcam

import (
	"errors"
	"fmt"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/tensors"
)

// augmentation is one of [Builder.AugSmooth]'s copies of an image: mirrored
// (left to right) or not, then multiplied by factor.
type augmentation struct {
	flip   bool
	factor float32
}

// augmentations are ttach's HorizontalFlip × Multiply(0.9, 1, 1.1), in its
// order (pytorch-grad-cam's default tta_transforms); the second is the image itself.
var augmentations = []augmentation{{false, 0.9}, {false, 1}, {false, 1.1}, {true, 0.9}, {true, 1}, {true, 1.1}}

// explainAugmented explains x with [Builder.AugSmooth]: the image itself
// first, for the classes that every copy then explains, then the other
// copies, each explained as without AugSmooth; their maps mirrored back and
// averaged.
func (c *CAM) explainAugmented(x *tensors.Tensor, t Target) (*Result, error) {
	if t.region != nil {
		return nil, errors.New("AugSmooth mirrors the images, and the Segment region given stays as it is, so the mirrored copies would explain another region: give a zero region (where the class is predicted) or turn AugSmooth off")
	}
	n := x.Shape().Dimensions[0]
	if err := c.checkPasses(c.method.Name(), n, fmt.Sprintf("(AugSmooth: %d augmented copies of each image)", len(augmentations)),
		"turn AugSmooth off"); err != nil {
		return nil, err
	}
	one := *c
	one.augSmooth = false
	perCopy := one.Passes(n) + n
	layout := c.runner.Model().Input().Layout
	data := tensors.MustCopyFlatData[float32](x)
	var res *Result
	sums := map[*[]float32][]float32{}
	for i, ai := range []int{1, 0, 2, 3, 4, 5} { // the image itself first
		aug := augmentations[ai]
		if c.progress != nil {
			done := i * perCopy
			one.progress = func(p Progress) {
				p.Done += done
				p.Total = c.Passes(n)
				c.progress(p)
			}
		}
		xa := tensors.FromFlatDataAndDimensions(augment(data, x.Shape().Dimensions, layout, aug), x.Shape().Dimensions...)
		r, err := one.Explain(xa, t)
		xa.FinalizeAll()
		if err != nil {
			return nil, fmt.Errorf("AugSmooth, the copy %s: %w", aug, err)
		}
		if res == nil {
			res = r
			if t.fn == nil {
				t = t.chosen(r.Classes, r.K)
			}
		}
		add := func(dst *[]float32, src []float32, width int) {
			if aug.flip {
				mirror(src, width)
			}
			s, ok := sums[dst]
			if !ok {
				s = make([]float32, len(src))
				sums[dst] = s
			}
			for j, v := range src {
				s[j] += v
			}
		}
		add(&res.Normalized, r.Normalized, r.Width)
		for l := range r.Raw {
			add(&res.Raw[l].Values, r.Raw[l].Values, r.Raw[l].Width)
		}
	}
	for dst, s := range sums {
		for j := range s {
			s[j] /= float32(len(augmentations))
		}
		*dst = s
	}
	return res, nil
}

func (a augmentation) String() string {
	if a.flip {
		return fmt.Sprintf("mirrored ×%g", a.factor)
	}
	return fmt.Sprintf("×%g", a.factor)
}

// augment returns a copy of the batch x (data, of dims [N,...] in layout)
// mirrored left to right if a.flip, times a.factor.
func augment(data []float32, dims []int, layout models.Layout, a augmentation) []float32 {
	out := make([]float32, len(data))
	for i, v := range data {
		out[i] = v * a.factor
	}
	if a.flip {
		// The width axis and the stride of one column step.
		width, stride := dims[3], 1
		if layout == models.NHWC {
			width, stride = dims[2], dims[3]
		}
		mirrorAxis(out, width, stride)
	}
	return out
}

// mirror reverses the rows of maps of the given width, laid out row-major.
func mirror(v []float32, width int) { mirrorAxis(v, width, 1) }

// mirrorAxis reverses, in v, the axis of the given length whose elements are
// stride apart, the axes after it being stride long.
func mirrorAxis(v []float32, length, stride int) {
	block := length * stride
	for b := 0; b < len(v); b += block {
		for i := range length / 2 {
			p, q := b+i*stride, b+(length-1-i)*stride
			for j := range stride {
				v[p+j], v[q+j] = v[q+j], v[p+j]
			}
		}
	}
}
