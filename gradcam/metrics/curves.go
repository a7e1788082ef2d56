package metrics

import (
	"math"

	"github.com/gomlx/gomlx/core/tensors"
)

// Curve is a deletion or insertion curve per image.
type Curve struct {
	// Fractions of pixels removed (deletion) or revealed (insertion): 0, 1/Steps, ..., 1.
	Fractions []float64
	// Scores [image][step]: the explained class's score at each fraction.
	Scores [][]float64
	// AUC per image: the area under the score curve over fractions in [0,1]
	// (trapezoidal rule).
	AUC []float64
	// MeanAUC over the images. Deletion: lower is more faithful (removing the
	// most important pixels first destroys the score fast). Insertion:
	// higher is more faithful.
	MeanAUC float64
}

// Deletion removes pixels in decreasing order of map value, setting them to
// [Options.Baseline], and scores the image after each of Steps equal
// increments (Petsiuk et al., 2018). round(f·H·W) pixels are removed at
// fraction f.
func (e *Evaluator) Deletion(x *tensors.Tensor, maps [][]float32, classes []int) (*Curve, error) {
	return e.curve("deletion", x, maps, classes, false)
}

// Insertion starts from an image of [Options.Baseline] and reveals the
// original pixels in decreasing order of map value, scoring after each of
// Steps equal increments (Petsiuk et al., 2018). Petsiuk et al. start from a
// blurred image; a constant start keeps the metric free of a blur parameter.
func (e *Evaluator) Insertion(x *tensors.Tensor, maps [][]float32, classes []int) (*Curve, error) {
	return e.curve("insertion", x, maps, classes, true)
}

func (e *Evaluator) curve(metric string, x *tensors.Tensor, maps [][]float32, classes []int, insert bool) (*Curve, error) {
	b, err := e.check(metric, x, maps, classes)
	if err != nil {
		return nil, err
	}
	steps := e.opt.Steps
	pixels := b.in.Height * b.in.Width
	var jobs []job
	for i := range b.n {
		order := b.ranking(i)
		img := b.image(i)
		if insert {
			for p := range pixels {
				b.set(img, p, e.opt.Baseline)
			}
		}
		done := 0
		for s := 0; s <= steps; s++ {
			target := int(math.Round(float64(s) / float64(steps) * float64(pixels)))
			for ; done < target; done++ {
				p := order[done]
				if insert {
					for c := range b.in.Channels {
						img[b.index(c, p)] = b.data[i*b.size+b.index(c, p)]
					}
				} else {
					b.set(img, p, e.opt.Baseline)
				}
			}
			jobs = append(jobs, job{owner: i, data: append([]float32(nil), img...)})
		}
	}
	scores, err := e.score(metric, b, jobs)
	if err != nil {
		return nil, err
	}
	c := &Curve{}
	for s := 0; s <= steps; s++ {
		c.Fractions = append(c.Fractions, float64(s)/float64(steps))
	}
	for i := range b.n {
		row := scores[i*(steps+1) : (i+1)*(steps+1)]
		c.Scores = append(c.Scores, row)
		c.AUC = append(c.AUC, auc(c.Fractions, row))
	}
	c.MeanAUC = mean(c.AUC)
	return c, nil
}

// auc is the trapezoidal area under y(x).
func auc(x, y []float64) float64 {
	var a float64
	for i := 1; i < len(x); i++ {
		a += (x[i] - x[i-1]) * (y[i] + y[i-1]) / 2
	}
	return a
}

// Confidence is the average drop and increase in confidence of the images
// masked by their maps.
type Confidence struct {
	// Original and Masked scores per image.
	Original, Masked []float64
	// Drop per image, in percent: 100·max(0, Original − Masked)/Original.
	Drop []float64
	// AverageDrop is the mean Drop, in percent (lower is more faithful).
	AverageDrop float64
	// IncreaseInConfidence is the percentage of images whose masked score is
	// higher than the original (higher is more faithful).
	IncreaseInConfidence float64
}

// Confidence multiplies each image by its map, E_c = x ⊙ map, in the model's
// input space (maps should be normalised to [0,1], as gradcam's are; values
// are clipped to [0,1]), and compares the explained class's score Y on x with
// O on E (Chattopadhay et al., 2018): average drop = mean_i 100·max(0, Y_i −
// O_i)/Y_i; increase in confidence = 100·#{i: O_i > Y_i}/N. With
// [Options.Logits] the drop is computed on logits, which only makes sense
// when they are positive.
func (e *Evaluator) Confidence(x *tensors.Tensor, maps [][]float32, classes []int) (*Confidence, error) {
	b, err := e.check("confidence", x, maps, classes)
	if err != nil {
		return nil, err
	}
	pixels := b.in.Height * b.in.Width
	var jobs []job
	for i := range b.n {
		jobs = append(jobs, job{owner: i, data: b.image(i)})
	}
	for i := range b.n {
		img := b.image(i)
		for p := range pixels {
			w := min(max(b.maps[i][p], 0), 1)
			for c := range b.in.Channels {
				img[b.index(c, p)] *= w
			}
		}
		jobs = append(jobs, job{owner: i, data: img})
	}
	scores, err := e.score("confidence", b, jobs)
	if err != nil {
		return nil, err
	}
	r := &Confidence{Original: scores[:b.n], Masked: scores[b.n:]}
	increase := 0
	for i := range b.n {
		y, o := r.Original[i], r.Masked[i]
		r.Drop = append(r.Drop, 100*math.Max(0, y-o)/y)
		if o > y {
			increase++
		}
	}
	r.AverageDrop = mean(r.Drop)
	r.IncreaseInConfidence = 100 * float64(increase) / float64(b.n)
	return r, nil
}
