package gradcam

import (
	"fmt"
	"math"

	"github.com/convlens/convlens/internal/resample"
	"github.com/gomlx/gomlx/core/graph"
)

// RISEMethod is Randomized Input Sampling for Explanation (Petsiuk et al.,
// 2018): Masks random masks M_p, each a Grid×Grid grid of cells kept with
// probability Keep, upsampled bilinearly to (Grid+1)·c (c = ⌈H/Grid⌉ rows,
// ⌈W/Grid⌉ columns a cell) and cropped to H×W at a random shift of less than
// a cell; copy p is x ⊙ M_p (baseline 0), and the map is
// Σ_p y_p M_p / (Masks · Keep), where y_p is the probability of the class
// (softmax of the logits, as in the paper; a Score target's own score) for
// copy p. One forward pass per mask and image.
//
// The masks are reproducible from Seed in any language, from [Uniform]'s
// stream: mask p takes U(j) for j = p·(Grid²+2) + i, i = 0..Grid²+1: cell
// (a, b) is kept when U(j) < Keep for i = a·Grid + b, and the shift is
// ⌊U·c⌋ rows for i = Grid² and ⌊U·c⌋ columns for i = Grid²+1. The
// upsampling is PyTorch's interpolate(mode="bilinear",
// align_corners=False), which for these sizes equals the paper's skimage
// resize (order 1, mode "reflect").
type RISEMethod struct {
	Masks, Grid int
	Keep        float64
	Seed        uint64
}

// RISE with the paper's grid for ImageNet models, 7×7 cells each kept with
// probability 0.5, and 1000 masks; seed 0. The paper used 4000 masks or
// more: its maps are smoother, at four times the cost (1000 passes an
// image here keep a batch of 20 images within [DefaultMaxPasses]).
var RISE Method = RISEMethod{Masks: 1000, Grid: 7, Keep: 0.5}

func (m RISEMethod) Name() string                   { return "rise" }
func (RISEMethod) Map(a, g *graph.Node) *graph.Node { return maskMap(a, g) }
func (RISEMethod) fill() float64                    { return 0 }
func (RISEMethod) probabilities() bool              { return true }
func (m RISEMethod) masks(_, _ int) int             { return max(m.Masks, 1) }
func (m RISEMethod) grid() int                      { return max(m.Grid, 1) }
func (m RISEMethod) String() string {
	return fmt.Sprintf("rise(masks=%d,grid=%d,keep=%g,seed=%d)", m.Masks, m.Grid, m.Keep, m.Seed)
}

func (m RISEMethod) mask(p, h, w int, dst []float32) {
	s := m.grid()
	ch, cw := (h+s-1)/s, (w+s-1)/s
	j0 := uint64(p) * uint64(s*s+2)
	cells := make([]float32, s*s)
	for i := range cells {
		if Uniform(m.Seed, j0+uint64(i)) < m.Keep {
			cells[i] = 1
		}
	}
	dy := min(int(math.Floor(Uniform(m.Seed, j0+uint64(s*s))*float64(ch))), ch-1)
	dx := min(int(math.Floor(Uniform(m.Seed, j0+uint64(s*s+1))*float64(cw))), cw-1)
	ty, tx := resample.Taps(s, (s+1)*ch), resample.Taps(s, (s+1)*cw)
	for y := range h {
		r := ty[y+dy]
		for x := range w {
			c := tx[x+dx]
			top := cells[r.I0*s+c.I0]*(1-c.F) + cells[r.I0*s+c.I1]*c.F
			bottom := cells[r.I1*s+c.I0]*(1-c.F) + cells[r.I1*s+c.I1]*c.F
			dst[y*w+x] = top*(1-r.F) + bottom*r.F
		}
	}
}

func (m RISEMethod) attribute(_ float64, scores []float64, h, w int) []float64 {
	sum := make([]float64, h*w)
	mask := make([]float32, h*w)
	for p, s := range scores {
		m.mask(p, h, w, mask)
		for i, v := range mask {
			sum[i] += s * float64(v)
		}
	}
	norm := float64(len(scores)) * m.Keep
	for i := range sum {
		sum[i] /= norm
	}
	return sum
}
