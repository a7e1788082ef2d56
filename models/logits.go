package models

import "math"

// Softmax turns one image's logits into probabilities, in float64 and shifted
// by the largest logit so that no exponential overflows.
func Softmax(logits []float32) []float64 {
	hi := math.Inf(-1)
	for _, v := range logits {
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
	return p
}
