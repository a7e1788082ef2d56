package models

import (
	"errors"
	"fmt"
	"math"
)

// Softmax turns one image's logits into probabilities, in float64 and shifted
// by the largest logit so that no exponential overflows. It returns an error
// for no logits, or for a logit that is NaN or infinite: such a model output
// has no meaningful probabilities, and would otherwise make every one NaN.
func Softmax(logits []float32) ([]float64, error) {
	if len(logits) == 0 {
		return nil, errors.New("models.Softmax: no logits: give one per class")
	}
	hi := math.Inf(-1)
	for i, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("models.Softmax: logit %d of %d is %v: the model's output is not finite (check the input and the weights for NaN or Inf)", i, len(logits), v)
		}
		hi = math.Max(hi, float64(v))
	}
	p := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp(float64(v) - hi)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p, nil
}

// Probabilities turns one image's logits into the probabilities of its
// classes: their [Softmax], or, for a model with one output z (a sigmoid
// binary classifier), the two decisions' (1 − σ(z), σ(z)), negative then
// positive. Its errors are Softmax's.
func Probabilities(logits []float32) ([]float64, error) {
	if len(logits) != 1 {
		return Softmax(logits)
	}
	z := float64(logits[0])
	if math.IsNaN(z) || math.IsInf(z, 0) {
		return nil, fmt.Errorf("models.Probabilities: the logit is %v: the model's output is not finite (check the input and the weights for NaN or Inf)", z)
	}
	p := 1 / (1 + math.Exp(-z))
	return []float64{1 - p, p}, nil
}
