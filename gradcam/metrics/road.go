package metrics

import (
	"math"

	"github.com/convlens/convlens/gradcam"
	"github.com/gomlx/gomlx/core/tensors"
)

// Road holds ROAD scores per image and percentile.
type Road struct {
	// Percentiles of pixels removed.
	Percentiles []float64
	// MoRF and LeRF scores [image][percentile]: the most (resp. least)
	// relevant pixels removed first.
	MoRF, LeRF [][]float64
	// MeanMoRF and MeanLeRF per percentile, over the images.
	MeanMoRF, MeanLeRF []float64
	// Gap is the mean over percentiles of MeanLeRF − MeanMoRF: how much more
	// removing the map's most relevant pixels hurts than removing its least
	// relevant ones. Higher is more faithful; about 0 for a random map.
	Gap float64
}

// ROAD, "remove and debias" (Rong et al., 2022): at each percentile p the p%
// most relevant pixels (MoRF) or the p% least relevant (LeRF) are removed
// and imputed from their neighbours, so that the removal leaves no
// tell-tale constant patch for the model to react to, and the explained
// class is scored.
//
// Imputation ("noisy linear imputation", simplified): each channel of a
// removed pixel becomes the weighted mean of its 8 neighbours (weight 1/6 for
// the 4 direct neighbours, 1/12 for the diagonal ones, renormalised at the
// border), removed neighbours included, i.e. the solution of a discrete
// Laplace-like equation with the kept pixels as boundary values. It is
// solved by successive over-relaxation, coarse to fine (see solveLaplace),
// then Gaussian noise of [Options.NoiseStd]
// is added to the imputed values (gradcam.NormalNoise, seeded by
// [Options.Seed], the image, the percentile and the order). If every pixel is
// removed, they all take the baseline.
func (e *Evaluator) ROAD(x *tensors.Tensor, maps [][]float32, classes []int) (*Road, error) {
	b, err := e.check("road", x, maps, classes)
	if err != nil {
		return nil, err
	}
	pixels := b.in.Height * b.in.Width
	pcts := e.opt.Percentiles
	var jobs []job
	for i := range b.n {
		order := b.ranking(i)
		for pi, pct := range pcts {
			count := int(math.Round(pct / 100 * float64(pixels)))
			for o, morf := range []bool{true, false} {
				removed := make([]bool, pixels)
				for r := range count {
					if morf {
						removed[order[r]] = true
					} else {
						removed[order[pixels-1-r]] = true
					}
				}
				img := b.image(i)
				seed := e.opt.Seed ^ (uint64(i)<<32 | uint64(pi)<<1 | uint64(o))
				e.impute(b, img, removed, seed)
				jobs = append(jobs, job{owner: i, data: img})
			}
		}
	}
	scores, err := e.score("road", b, jobs)
	if err != nil {
		return nil, err
	}
	r := &Road{Percentiles: pcts, MeanMoRF: make([]float64, len(pcts)), MeanLeRF: make([]float64, len(pcts))}
	for i := range b.n {
		morf, lerf := make([]float64, len(pcts)), make([]float64, len(pcts))
		for pi := range pcts {
			morf[pi] = scores[(i*len(pcts)+pi)*2]
			lerf[pi] = scores[(i*len(pcts)+pi)*2+1]
			r.MeanMoRF[pi] += morf[pi] / float64(b.n)
			r.MeanLeRF[pi] += lerf[pi] / float64(b.n)
		}
		r.MoRF, r.LeRF = append(r.MoRF, morf), append(r.LeRF, lerf)
	}
	for pi := range pcts {
		r.Gap += (r.MeanLeRF[pi] - r.MeanMoRF[pi]) / float64(len(pcts))
	}
	return r, nil
}

// impute fills the removed pixels of img (one image, the model's layout) in place.
func (e *Evaluator) impute(b *batch, img []float32, removed []bool, seed uint64) {
	h, w := b.in.Height, b.in.Width
	var holes []int
	for p, r := range removed {
		if r {
			holes = append(holes, p)
		}
	}
	if len(holes) == 0 {
		return
	}
	if len(holes) == h*w {
		for _, p := range holes {
			b.set(img, p, e.opt.Baseline)
		}
		return
	}
	noise, _ := gradcam.NormalNoise(seed, b.in.Channels*len(holes)) // A count, ≥ 0.
	for c := range b.in.Channels {
		v := make([]float64, h*w)
		for p := range v {
			v[p] = float64(img[b.index(c, p)])
		}
		solveLaplace(v, removed, h, w)
		for j, p := range holes {
			img[b.index(c, p)] = float32(v[p] + e.opt.NoiseStd*float64(noise[c*len(holes)+j]))
		}
	}
}

// solveLaplace replaces the removed values of v [h×w] by the solution of the
// imputation equations (each removed value is the weighted mean of its
// neighbours, see [Evaluator.ROAD]). It starts from the solution on a grid
// half the size (blocks of 2×2, recursively), so that successive
// over-relaxation (ω = 1.8) converges in a few sweeps even across large
// holes; it stops when no value moves by more than 1e-5 of the kept values'
// range, or after 400 sweeps.
func solveLaplace(v []float64, removed []bool, h, w int) {
	var holes []int
	lo, hi := math.Inf(1), math.Inf(-1)
	var sum float64
	for p, r := range removed {
		if r {
			holes = append(holes, p)
		} else {
			sum += v[p]
			lo, hi = math.Min(lo, v[p]), math.Max(hi, v[p])
		}
	}
	kept := len(v) - len(holes)
	if len(holes) == 0 || kept == 0 {
		return
	}
	if h*w <= 64 || h < 4 || w < 4 {
		for _, p := range holes {
			v[p] = sum / float64(kept)
		}
	} else {
		// Coarse grid: the mean of each 2×2 block's kept values.
		ch, cw := (h+1)/2, (w+1)/2
		cv := make([]float64, ch*cw)
		cr := make([]bool, ch*cw)
		for cy := range ch {
			for cx := range cw {
				var s float64
				n := 0
				for y := 2 * cy; y < min(2*cy+2, h); y++ {
					for x := 2 * cx; x < min(2*cx+2, w); x++ {
						if !removed[y*w+x] {
							s += v[y*w+x]
							n++
						}
					}
				}
				if n > 0 {
					cv[cy*cw+cx] = s / float64(n)
				} else {
					cr[cy*cw+cx] = true
				}
			}
		}
		solveLaplace(cv, cr, ch, cw)
		for _, p := range holes {
			y, x := p/w, p%w
			v[p] = cv[(y/2)*cw+x/2]
		}
	}
	tol := 1e-5 * math.Max(hi-lo, 1e-12)
	const omega = 1.8
	for range 400 {
		var moved float64
		for _, p := range holes {
			y, x := p/w, p%w
			var acc, wsum float64
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if (dy == 0 && dx == 0) || y+dy < 0 || y+dy >= h || x+dx < 0 || x+dx >= w {
						continue
					}
					wt := 1.0 / 6
					if dy != 0 && dx != 0 {
						wt = 1.0 / 12
					}
					acc += wt * v[(y+dy)*w+x+dx]
					wsum += wt
				}
			}
			next := v[p] + omega*(acc/wsum-v[p])
			moved = math.Max(moved, math.Abs(next-v[p]))
			v[p] = next
		}
		if moved < tol {
			return
		}
	}
}
