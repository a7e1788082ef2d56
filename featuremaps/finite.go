package featuremaps

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/tensors"
)

// NonFiniteError reports a NaN or an infinity in one image's input,
// activations or logits. Statistics and grids of such values mean nothing
// (a NaN mean, a blank tile), so [Extract] returns this error instead.
type NonFiniteError struct {
	// Image is the index of the image in the batch given to Extract.
	Image int
	// Layer is the layer whose activation holds the values; "" for the input
	// or the logits, as Logits says.
	Layer  string
	Logits bool
	// Value is the first non-finite value (NaN, +Inf or −Inf); Count of the
	// Size values are not finite.
	Value       float32
	Count, Size int
}

func (e *NonFiniteError) Error() string {
	what, cause := "input", "every value fed to the model must be finite"
	switch {
	case e.Layer != "":
		what = fmt.Sprintf("activation of layer %q", e.Layer)
		cause = "the input is finite, so the weights before this layer hold NaN or infinities, or the arithmetic overflows"
	case e.Logits:
		what = "logits"
		cause = "the input and the layers extracted are finite, so the weights after them hold NaN or infinities, or the arithmetic overflows"
	}
	return fmt.Sprintf("image %d: %d of the %d values of the %s are not finite (the first is %v): %s",
		e.Image, e.Count, e.Size, what, e.Value, cause)
}

// checkFinite refuses activations computed from the batch x when x, an
// activation or the logits hold a non-finite value, in that order: the
// first place one appears says where it comes from.
func (a *Activations) checkFinite(x *tensors.Tensor) error {
	var err error
	if cerr := tensors.ConstFlatData(x, func(flat []float32) {
		err = nonFinite(flat, a.N, NonFiniteError{})
	}); cerr != nil {
		return fmt.Errorf("reading the input: %w", cerr)
	}
	if err != nil {
		return err
	}
	for _, fm := range a.Maps {
		if err := nonFinite(fm.Values, a.N, NonFiniteError{Layer: fm.Layer.Name}); err != nil {
			return err
		}
	}
	return nonFinite(a.Logits, a.N, NonFiniteError{Logits: true})
}

// nonFinite returns the error where for the first of n images, laid out
// image-major in values, that holds a non-finite value.
func nonFinite(values []float32, n int, where NonFiniteError) error {
	if n == 0 {
		return nil
	}
	size := len(values) / n
	for i := range n {
		for _, v := range values[i*size : (i+1)*size] {
			if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
				continue
			}
			if where.Count == 0 {
				where.Image, where.Value, where.Size = i, v, size
			}
			where.Count++
		}
		if where.Count > 0 {
			return &where
		}
	}
	return nil
}
