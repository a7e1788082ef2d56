package gradcam

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/tensors"
)

// NonFiniteError reports a NaN or an infinity in what one image's
// explanation is computed from or comes to. A map computed from such a value
// is NaN throughout, and the classes chosen from NaN logits are arbitrary,
// so [CAM.Explain] returns this error instead of the result.
type NonFiniteError struct {
	// Image is the index of the image in the batch given to Explain.
	Image int
	// What holds the values: "input", "logits", "score" or "map".
	What string
	// Value is the first non-finite value (NaN, +Inf or −Inf); Count of the
	// Size values of this image's What are not finite.
	Value       float32
	Count, Size int
}

func (e *NonFiniteError) Error() string {
	var cause string
	switch e.What {
	case "input":
		cause = "every value fed to the model must be finite"
	case "logits":
		cause = "the input is finite, so the model's weights hold NaN or infinities, or its arithmetic overflows"
	case "score":
		cause = "the logits are finite, so the target's score function made it"
	default:
		cause = "the logits are finite, so the gradient or the activations overflow"
	}
	return fmt.Sprintf("image %d: %d of the %d values of the %s are not finite (the first is %v): %s",
		e.Image, e.Count, e.Size, e.What, e.Value, cause)
}

// checkInput refuses a batch x [N,...] (float32, as [models.CheckBatch]
// requires) with a non-finite value, before any graph runs.
func checkInput(x *tensors.Tensor) error {
	var err error
	if cerr := tensors.ConstFlatData(x, func(flat []float32) {
		err = checkImages("input", flat, x.Shape().Dimensions[0])
	}); cerr != nil {
		return fmt.Errorf("reading the input: %w", cerr)
	}
	return err
}

// checkFinite refuses a result holding a non-finite logit, score or map
// value, naming the first image that holds one.
func (r *Result) checkFinite() error {
	if err := checkImages("logits", r.Logits, r.N); err != nil {
		return err
	}
	if err := checkImages("score", r.Scores, r.N); err != nil {
		return err
	}
	if err := checkImages("map", r.Normalized, r.N); err != nil {
		return err
	}
	for _, l := range r.Raw {
		if err := checkImages("map", l.Values, r.N); err != nil {
			return err
		}
	}
	return nil
}

// inChunk renumbers the image of a NonFiniteError from a chunk of a batch
// that starts at image first, so that it indexes the whole batch.
func inChunk(err error, first int) error {
	var nf *NonFiniteError
	if first == 0 || !errors.As(err, &nf) {
		return err
	}
	moved := *nf
	moved.Image += first
	return &moved
}

// checkImages looks for a non-finite value in values, n images' worth laid
// out image-major, and reports the first image holding one.
func checkImages(what string, values []float32, n int) error {
	if n == 0 {
		return nil
	}
	size := len(values) / n
	for i := range n {
		image := values[i*size : (i+1)*size]
		count := 0
		var first float32
		for _, v := range image {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				if count == 0 {
					first = v
				}
				count++
			}
		}
		if count > 0 {
			return &NonFiniteError{Image: i, What: what, Value: first, Count: count, Size: size}
		}
	}
	return nil
}
