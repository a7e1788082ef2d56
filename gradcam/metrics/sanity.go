package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Similarity compares maps of the trained model with maps of its randomised copy.
type Similarity struct {
	// Spearman rank correlation per image, in [−1, 1].
	Spearman []float64
	// Mean over the images. A method that explains the model, rather than
	// the image alone, has a low similarity (near 0); 1 means the maps do not
	// depend on the weights at all.
	Mean float64
}

// Randomization is the model-parameter randomisation sanity check (Adebayo
// et al., 2018): explain computes the maps with the runner it is given,
// once with r and once with a runner for [Randomize](r.Model(), seed) on the
// same backend; their similarity is the Spearman rank correlation of each
// image's two maps (ties get their average rank; a constant map has no
// ranking: similarity 1 if both maps are constant, else 0).
func Randomization(r *models.Runner, seed uint64, explain func(*models.Runner) ([][]float32, error)) (*Similarity, error) {
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("metrics.Randomization: runner r: %w", err)
	}
	if explain == nil {
		return nil, errors.New("metrics.Randomization: explain is nil: give a function that computes the maps with the runner it is passed")
	}
	orig, err := explain(r)
	if err != nil {
		return nil, err
	}
	rm, err := Randomize(r.Model(), seed)
	if err != nil {
		return nil, err
	}
	rr := models.NewRunner(r.Backend(), rm)
	defer rr.Close()
	rand, err := explain(rr)
	if err != nil {
		return nil, fmt.Errorf("explaining the randomised model: %w", err)
	}
	if len(rand) != len(orig) {
		return nil, fmt.Errorf("%d maps for the model but %d for its randomised copy", len(orig), len(rand))
	}
	s := &Similarity{}
	for i := range orig {
		if len(orig[i]) != len(rand[i]) {
			return nil, fmt.Errorf("map %d has %d values for the model but %d for its randomised copy", i, len(orig[i]), len(rand[i]))
		}
		rho, err := Spearman(orig[i], rand[i])
		if err != nil {
			return nil, fmt.Errorf("map %d: %w", i, err)
		}
		s.Spearman = append(s.Spearman, rho)
	}
	s.Mean = mean(s.Spearman)
	return s, nil
}

// Spearman is the rank correlation of a and b (average ranks for ties; see
// [Randomization] for constant maps). Slices of different lengths, empty
// ones, or ones holding NaN, which has no rank, are an error.
func Spearman(a, b []float32) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("metrics.Spearman: a has %d values and b %d: give two maps of one size", len(a), len(b))
	}
	if len(a) == 0 {
		return 0, errors.New("metrics.Spearman: a and b are empty: give two maps of at least one value")
	}
	for name, v := range map[string][]float32{"a": a, "b": b} {
		for i, x := range v {
			if math.IsNaN(float64(x)) {
				return 0, fmt.Errorf("metrics.Spearman: %s[%d] is NaN, which has no rank", name, i)
			}
		}
	}
	ra, rb := ranks(a), ranks(b)
	ca, cb := constant(a), constant(b)
	switch {
	case ca && cb:
		return 1, nil
	case ca || cb:
		return 0, nil
	}
	ma, mb := mean(ra), mean(rb)
	var sab, saa, sbb float64
	for i := range ra {
		da, db := ra[i]-ma, rb[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	return sab / math.Sqrt(saa*sbb), nil
}

func constant(v []float32) bool {
	for _, x := range v {
		if x != v[0] {
			return false
		}
	}
	return true
}

// ranks returns the 1-based ranks of v, ties averaged.
func ranks(v []float32) []float64 {
	order := make([]int, len(v))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		switch {
		case v[i] < v[j]:
			return -1
		case v[i] > v[j]:
			return 1
		}
		return 0
	})
	r := make([]float64, len(v))
	for i := 0; i < len(order); {
		j := i
		for j+1 < len(order) && v[order[j+1]] == v[order[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[order[k]] = avg
		}
		i = j + 1
	}
	return r
}

// randomized is a model with other weights.
type randomized struct {
	models.Model
	store *model.Store
}

func (m randomized) Store() *model.Store { return m.store }
func (m randomized) Name() string        { return m.Model.Name() + " (randomised)" }

// Randomize returns a copy of m whose weights are all redrawn at random: every
// float32 variable with at least 2 values gets mean + std · z, with the
// variable's own mean and standard deviation and z from
// gradcam.NormalNoise (seeded by seed and the variable's position in the
// store), so the layers keep their scale (a BatchNorm-free, unit-scaled
// network stays so). Variables with fewer values, other dtypes (shapes,
// indices) or no spread are kept. The original model is not changed.
func Randomize(m models.Model, seed uint64) (models.Model, error) {
	if m == nil {
		return nil, errors.New("metrics.Randomize: model m is nil")
	}
	if m.Store() == nil {
		return nil, fmt.Errorf("metrics.Randomize: model m (%q) has a nil weight store, or is a nil pointer", m.Name())
	}
	store, err := m.Store().Clone()
	if err != nil {
		return nil, fmt.Errorf("copying the weights of %s: %w", m.Name(), err)
	}
	i := uint64(0)
	for v := range store.IterVariables() {
		i++
		if v.DType() != dtypes.Float32 || v.Shape().Size() < 2 {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("reading variable %s: %w", v.Path(), err)
		}
		data := tensors.MustCopyFlatData[float32](val)
		var mu, sq float64
		for _, x := range data {
			mu += float64(x)
		}
		mu /= float64(len(data))
		for _, x := range data {
			sq += (float64(x) - mu) * (float64(x) - mu)
		}
		std := math.Sqrt(sq / float64(len(data)))
		if std == 0 {
			continue
		}
		z, _ := gradcam.NormalNoise(seed^(i*0x9E3779B97F4A7C15), len(data)) // A length, ≥ 0.
		for j := range data {
			data[j] = float32(mu + std*float64(z[j]))
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(data, v.Shape().Dimensions...)); err != nil {
			return nil, fmt.Errorf("setting variable %s: %w", v.Path(), err)
		}
	}
	return randomized{Model: m, store: store}, nil
}
