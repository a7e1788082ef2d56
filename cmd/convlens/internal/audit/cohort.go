package audit

import (
	"cmp"
	"math"
	"slices"
)

// Mostly is the share of a map's energy inside a region above which the
// evidence is "mostly" on it.
const Mostly = 0.5

// Proportion is a count of successes among trials with its 95% Wilson
// score interval.
type Proportion struct {
	K, N   int
	Lo, Hi float64
}

// Value is K/N (NaN when N is 0).
func (p Proportion) Value() float64 { return float64(p.K) / float64(p.N) }

// NewProportion returns k of n with its 95% Wilson score interval.
func NewProportion(k, n int) Proportion {
	p := Proportion{K: k, N: n, Lo: math.NaN(), Hi: math.NaN()}
	if n == 0 {
		return p
	}
	const z = 1.959963984540054
	ph, nf := float64(k)/float64(n), float64(n)
	den := 1 + z*z/nf
	mid := (ph + z*z/(2*nf)) / den
	half := z * math.Sqrt(ph*(1-ph)/nf+z*z/(4*nf*nf)) / den
	p.Lo, p.Hi = max(0, mid-half), min(1, mid+half)
	return p
}

// Mean is a sample mean with its 95% confidence interval (normal
// approximation: mean ± 1.96 standard errors).
type Mean struct {
	N      int
	Value  float64
	Lo, Hi float64
	sum    float64
	sumSq  float64
}

func (m *Mean) add(v float64) { m.N++; m.sum += v; m.sumSq += v * v }

func (m *Mean) finish() {
	m.Value, m.Lo, m.Hi = math.NaN(), math.NaN(), math.NaN()
	if m.N == 0 {
		return
	}
	n := float64(m.N)
	m.Value = m.sum / n
	if m.N < 2 {
		return
	}
	variance := max(0, (m.sumSq-n*m.Value*m.Value)/(n-1))
	half := 1.959963984540054 * math.Sqrt(variance/n)
	m.Lo, m.Hi = m.Value-half, m.Value+half
}

// RegionStats are a cohort's figures for one region.
type RegionStats struct {
	Name string
	// Pointing is the pointing game over the images that have the region.
	Pointing Proportion
	// Energy is the mean share of energy inside, over the same images.
	Energy Mean
	// Mostly counts the maps with more than Mostly of their energy inside.
	Mostly Proportion
	// Hist counts the images by energy inside, in 10 bins of 0.1.
	Hist [10]int
}

// Stats are the figures of a cohort (or of one class of it).
type Stats struct {
	// Images are all rows; Errors the error rows.
	Images, Errors int
	// Accuracy is over the rows with a label and results.
	Accuracy Proportion
	// Regions in the order rows list them.
	Regions []*RegionStats
	// ROAD and Drop are the per-image metrics' means, when computed.
	ROAD, Drop Mean
	// Confidence counts the predictions by probability, in 10 bins.
	Confidence [10]int
	correct    int
}

func (s *Stats) region(name string) *RegionStats {
	for _, r := range s.Regions {
		if r.Name == name {
			return r
		}
	}
	r := &RegionStats{Name: name}
	s.Regions = append(s.Regions, r)
	return r
}

// Add accounts for one row.
func (s *Stats) Add(r *Row) {
	s.Images++
	if !r.OK() {
		s.Errors++
		return
	}
	if r.Label != nil && r.Predicted != nil {
		s.Accuracy.N++
		if *r.Label == *r.Predicted {
			s.correct++
		}
	}
	if r.Probability != nil {
		s.Confidence[bin(*r.Probability)]++
	}
	for _, reg := range r.Regions {
		rs := s.region(reg.Name)
		if !reg.Present || reg.EnergyInside == nil || reg.PointingHit == nil {
			continue
		}
		rs.Pointing.N++
		if *reg.PointingHit {
			rs.Pointing.K++
		}
		rs.Energy.add(*reg.EnergyInside)
		rs.Mostly.N++
		if *reg.EnergyInside > Mostly {
			rs.Mostly.K++
		}
		rs.Hist[bin(*reg.EnergyInside)]++
	}
	if r.ROADGap != nil {
		s.ROAD.add(*r.ROADGap)
	}
	if r.Drop != nil {
		s.Drop.add(*r.Drop)
	}
}

func bin(v float64) int { return min(max(int(v*10), 0), 9) }

// Finish computes the intervals once every row was added.
func (s *Stats) Finish() {
	s.Accuracy = NewProportion(s.correct, s.Accuracy.N)
	for _, r := range s.Regions {
		r.Pointing = NewProportion(r.Pointing.K, r.Pointing.N)
		r.Mostly = NewProportion(r.Mostly.K, r.Mostly.N)
		r.Energy.finish()
	}
	s.ROAD.finish()
	s.Drop.finish()
}

// Region returns the figures of the named region, or nil.
func (s *Stats) Region(name string) *RegionStats {
	for _, r := range s.Regions {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Case is one image of a gallery: a row's id and what ranks it.
type Case struct {
	ID, Path string
	// Score ranks the case (highest first); Shown is the figure its caption gives.
	Score, Shown float64
}

// worst keeps the k cases of highest score (ties: lower id first).
type worst struct {
	k     int
	cases []Case
}

func (w *worst) add(c Case) {
	w.cases = append(w.cases, c)
	slices.SortFunc(w.cases, func(a, b Case) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(w.cases) > w.k {
		w.cases = w.cases[:w.k]
	}
}
