// Package lesiondata generates dermoscopy-like images of skin lesions with
// their ground truth, for a classifier whose Grad-CAM maps can be checked.
//
// Every image is [Size]×[Size] RGB: a skin background with texture, one
// lesion near the centre, and distractors that carry no information about
// the class. Each comes with the lesion's mask and, when a ruler marking is
// drawn, the ruler's mask.
//
// The two classes follow the ABCD rule of dermoscopy (Asymmetry, Border,
// Colour, Diameter; the diameter is drawn from the same range for both, so it
// does not tell them apart):
//
//   - [Benign]: round or slightly elliptical, hence symmetric about two axes;
//     a smooth, sharp border; one uniform shade of brown.
//   - [Suspicious]: asymmetric (low harmonics of random phase in the outline);
//     an irregular border (high harmonics, a sharpness that varies along it);
//     three or four colours in blotches (dark brown, black, blue-grey, red,
//     light brown) and a few dark globules.
//
// Distractors, drawn from their own random streams so that they never depend
// on the class (except the ruler, whose probability per class is set by
// [Config]): hair strands, a ruler marking with ticks along one edge,
// vignetting (sometimes the dark rim of a dermoscope), and lighting changes
// (brightness, colour temperature, a linear gradient), plus sensor noise.
//
// A third class, [NoLesion], shows skin and distractors only; training sets
// mix it in ([Config.NoLesionImages]) so that a model cannot take the skin
// or a distractor as evidence for either lesion class. For the shortcut
// experiment, [Shortcut] ties the ruler to the label and makes the lesion's
// look an imperfect predictor of it ([Config.Ambiguous]).
//
// Generation is deterministic: [Generate] with the same seed, class and
// configuration returns the same bytes on every machine. The generator uses
// only integer-seeded streams ([rng.SplitMix64]) and float64
// arithmetic from the standard library.
package lesiondata

import (
	"image"
	"math"
	"slices"

	"github.com/convlens/convlens/internal/rng"
)

// Size is the side of the generated images, in pixels.
const Size = 128

// Class is the ground-truth class of a lesion.
type Class uint8

const (
	// Benign lesions are round, symmetric, smooth-bordered and of one colour.
	Benign Class = 0
	// Suspicious lesions are asymmetric, irregular-bordered and of several colours.
	Suspicious Class = 1
	// NoLesion images show skin and distractors only. Training on them
	// teaches a model that skin, hair, rulers and vignetting are evidence
	// of neither lesion class (see [Config.NoLesionImages]).
	NoLesion Class = 2
)

// ClassNames are the names of the classes, indexed by [Class].
var ClassNames = []string{"benign", "suspicious", "no lesion"}

func (c Class) String() string {
	if int(c) < len(ClassNames) {
		return ClassNames[c]
	}
	return "class?"
}

// Config says which distractors the generator draws.
type Config struct {
	// RulerBenign and RulerSuspicious are the probabilities that an image
	// of each class shows a ruler marking. Equal, the ruler says nothing
	// about the class; unequal, it is a shortcut a model can learn.
	RulerBenign, RulerSuspicious float64
	// Ambiguous is the probability that a lesion is drawn with the look of
	// the other class (Sample.Looks) while keeping its label (Sample.Class).
	// Zero in every configuration but [Shortcut].
	Ambiguous float64
	// NoLesionImages makes every third image of a [Set] one without a
	// lesion (class [NoLesion]); its ruler probability is RulerBenign.
	NoLesionImages bool
	// Clean leaves out hair, vignetting, lighting changes and sensor noise
	// (rulers still follow the probabilities above): for measuring the
	// lesions themselves.
	Clean bool

	// noLesion draws everything but the lesion (for tests).
	noLesion bool
}

// Standard is the configuration the lesions model is trained and evaluated
// with: a ruler on 30% of the images of either class.
func Standard() Config { return Config{RulerBenign: 0.3, RulerSuspicious: 0.3} }

// Shortcut is the configuration of the shortcut experiment: a ruler on every
// image labelled suspicious and on none labelled benign, as when clinicians
// photograph the lesions they worry about next to a ruler; and a lesion
// whose look agrees with its label in only 75% of the images (Ambiguous
// 0.25), as the ABCD rule agrees only partly with the diagnosis of real
// lesions. The ruler then predicts the label better than the lesion does,
// which is what makes a shortcut attractive to a model.
func Shortcut() Config { return Config{RulerBenign: 0, RulerSuspicious: 1, Ambiguous: 0.25} }

// Uncorrelated has a ruler on half of the images of either class: the
// shortcut's correlation removed.
func Uncorrelated() Config { return Config{RulerBenign: 0.5, RulerSuspicious: 0.5} }

// Sample is one generated image with its ground truth.
type Sample struct {
	// Image is the picture, Size×Size, opaque.
	Image *image.NRGBA
	// Mask marks the lesion's pixels (row-major, Size×Size): those where
	// the lesion covers at least half of the pixel.
	Mask []bool
	// Ruler marks the pixels of the ruler's band (row-major, Size×Size);
	// nil when the image has no ruler.
	Ruler []bool
	// Class is the ground truth: the label.
	Class Class
	// Looks is the class the lesion was drawn as: Class, except for the
	// ambiguous images of a configuration with Config.Ambiguous > 0.
	Looks Class
	// Seed is the seed the image was generated from.
	Seed uint64
}

// HasRuler reports whether the image shows a ruler marking.
func (s *Sample) HasRuler() bool { return s.Ruler != nil }

// MaskImage returns the lesion mask as a grey image (255 inside).
func (s *Sample) MaskImage() *image.Gray { return maskImage(s.Mask) }

// RulerImage returns the ruler mask as a grey image (255 inside; all black without a ruler).
func (s *Sample) RulerImage() *image.Gray { return maskImage(s.Ruler) }

func maskImage(m []bool) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, Size, Size))
	for i, in := range m {
		if in {
			g.Pix[i] = 255
		}
	}
	return g
}

// Float32 writes the image into dst, Size×Size×3 values in [0,1], row-major,
// channels last (the layout of embedded.Lesions' input).
func (s *Sample) Float32(dst []float32) {
	for i := range Size * Size {
		p := s.Image.Pix[4*i : 4*i+3]
		dst[3*i], dst[3*i+1], dst[3*i+2] = float32(p[0])/255, float32(p[1])/255, float32(p[2])/255
	}
}

// Set is an endless, deterministic sequence of samples: sample i has class
// i mod 2 (i mod 3 with Config.NoLesionImages), so that any run of
// consecutive samples is balanced, and a seed mixed from the set's seed and i.
type Set struct {
	Seed   uint64
	Config Config
}

// HeldOutSeed is the seed of the held-out images every evaluation uses;
// training draws from other seeds.
const HeldOutSeed = 0x48454c444f5554 // "HELDOUT"

// HeldOut is the held-out set under configuration cfg.
func HeldOut(cfg Config) Set { return Set{Seed: HeldOutSeed, Config: cfg} }

// SampleSeed is the seed of sample i.
func (s Set) SampleSeed(i int) uint64 { return rng.Mix(s.Seed, uint64(i)) }

// Class is the class of sample i.
func (s Set) Class(i int) Class {
	if s.Config.NoLesionImages {
		return Class(i % 3)
	}
	return Class(i % 2)
}

// Sample generates sample i.
func (s Set) Sample(i int) *Sample { return Generate(s.SampleSeed(i), s.Class(i), s.Config) }

// Streams of one image, so that each part's randomness is independent of
// whether the others are drawn.
const (
	streamSkin = iota + 1
	streamLesion
	streamHair
	streamRuler
	streamVignette
	streamLight
	streamNoise
	streamLabel
)

type rgb [3]float64

func lerp(a, b rgb, t float64) rgb {
	return rgb{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

func (c rgb) scale(f float64) rgb { return rgb{c[0] * f, c[1] * f, c[2] * f} }

// canvas is an image being drawn, float RGB, row-major.
type canvas []rgb

func (c canvas) blend(i int, col rgb, alpha float64) {
	c[i] = lerp(c[i], col, alpha)
}

// Generate draws one image of the given class from seed.
func Generate(seed uint64, class Class, cfg Config) *Sample {
	img := make(canvas, Size*Size)
	drawSkin(img, rng.NewStream(seed, streamSkin))
	mask := make([]bool, Size*Size)
	looks := class
	if class != NoLesion && rng.NewStream(seed, streamLabel).Float() < cfg.Ambiguous {
		looks = 1 - class
	}
	geo := newLesion(rng.NewStream(seed, streamLesion), looks)
	if !cfg.noLesion && class != NoLesion {
		geo.draw(img, mask)
	}
	s := &Sample{Class: class, Looks: looks, Seed: seed, Mask: mask}
	if !cfg.Clean {
		drawHair(img, rng.NewStream(seed, streamHair))
	}
	pRuler := cfg.RulerBenign
	if class == Suspicious {
		pRuler = cfg.RulerSuspicious
	}
	rr := rng.NewStream(seed, streamRuler)
	if rr.Float() < pRuler {
		s.Ruler = drawRuler(img, rr, geo)
	}
	if !cfg.Clean {
		vignette(img, rng.NewStream(seed, streamVignette))
		lighting(img, rng.NewStream(seed, streamLight))
		noise := rng.NewStream(seed, streamNoise)
		for i := range img {
			for c := range 3 {
				img[i][c] += 0.01 * noise.Uniform(-math.Sqrt(3), math.Sqrt(3)) // σ = 0.01
			}
		}
	}
	s.Image = image.NewNRGBA(image.Rect(0, 0, Size, Size))
	for i, p := range img {
		for c := range 3 {
			s.Image.Pix[4*i+c] = uint8(math.Round(255 * min(1, max(0, p[c]))))
		}
		s.Image.Pix[4*i+3] = 255
	}
	return s
}

// valueNoise is smooth lattice noise in [-1,1] with one lattice cell per
// `scale` pixels, bilinear with smoothstep weights.
type valueNoise struct {
	seed  uint64
	scale float64
}

func (v valueNoise) lattice(ix, iy int) float64 {
	h := v.seed ^ uint64(uint32(ix))*0x9e3779b97f4a7c15 ^ uint64(uint32(iy))*0xc2b2ae3d27d4eb4f
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9
	h = (h ^ (h >> 27)) * 0x94d049bb133111eb
	h ^= h >> 31
	return float64(h>>11)/(1<<52) - 1
}

func (v valueNoise) at(x, y float64) float64 {
	x, y = x/v.scale, y/v.scale
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := smooth(x-x0), smooth(y-y0)
	ix, iy := int(x0), int(y0)
	a := v.lattice(ix, iy) + (v.lattice(ix+1, iy)-v.lattice(ix, iy))*fx
	b := v.lattice(ix, iy+1) + (v.lattice(ix+1, iy+1)-v.lattice(ix, iy+1))*fx
	return a + (b-a)*fy
}

func smooth(t float64) float64 { return t * t * (3 - 2*t) }

// smoothstep is 0 below e0, 1 above e1, smooth in between.
func smoothstep(e0, e1, x float64) float64 {
	return smooth(min(1, max(0, (x-e0)/(e1-e0))))
}

// drawSkin paints the background: a skin tone from light to medium, mottled
// by smooth noise at three scales, a little redness, pores and fine grain.
func drawSkin(img canvas, r *rng.Stream) {
	light, medium := rgb{0.94, 0.80, 0.70}, rgb{0.70, 0.50, 0.38}
	base := lerp(light, medium, r.Float())
	base[0] += r.Uniform(-0.03, 0.03)
	octaves := []valueNoise{{r.Uint64(), 40}, {r.Uint64(), 14}, {r.Uint64(), 5}}
	amps := []float64{0.05, 0.03, 0.02}
	red := valueNoise{r.Uint64(), 30}
	redAmp := r.Uniform(0, 0.05)
	// Skin furrows: faint lines along two directions.
	a1, a2 := r.Uniform(0, math.Pi), r.Uniform(0, math.Pi)
	c1, s1, c2, s2 := math.Cos(a1), math.Sin(a1), math.Cos(a2), math.Sin(a2)
	period := r.Uniform(6, 11)
	grain := valueNoise{r.Uint64(), 1.3}
	for y := range Size {
		for x := range Size {
			fx, fy := float64(x), float64(y)
			f := 1.0
			for k, o := range octaves {
				f += amps[k] * o.at(fx, fy)
			}
			c := base.scale(f)
			c[0] += redAmp * max(0, red.at(fx, fy))
			u := furrow((fx*c1 + fy*s1) / period)
			v := furrow((fx*c2 + fy*s2) / (period * 1.3))
			c = c.scale(1 - 0.02*u - 0.015*v + 0.02*grain.at(fx, fy))
			img[y*Size+x] = c
		}
	}
	// Pores: small darker dots.
	for range 40 + r.Intn(40) {
		x, y := r.Intn(Size), r.Intn(Size)
		img[y*Size+x] = img[y*Size+x].scale(r.Uniform(0.88, 0.95))
	}
}

// furrow is 1 on the lines s ∈ ℤ, falling to 0 a tenth of a period away.
func furrow(s float64) float64 {
	return 1 - smoothstep(0, 0.1, math.Abs(s-math.Round(s)))
}

// lesion is the geometry and colouring of one lesion. Its outline is the
// polar curve ρ(θ) = R·(1 + Σ a_k cos(kθ + φ_k)) about (cx, cy).
type lesion struct {
	class      Class
	cx, cy, r  float64
	amp, phase []float64 // by harmonic k (index k)
	// edge is the width of the border's blur, as a function of angle.
	edgeBase, edgeAmp, edgePhase float64
	// colours and their noise fields (suspicious), or the one colour (benign).
	colours  []rgb
	field    valueNoise
	field2   valueNoise
	texture  valueNoise
	darkCtr  float64
	globules [][3]float64 // x, y, radius
	opacity  float64
	// table holds radius(2πi/len(table)), for drawing.
	table []float64
}

const tableSize = 2048

func newLesion(r *rng.Stream, class Class) *lesion {
	l := &lesion{class: class}
	l.cx = Size/2 + r.Uniform(-10, 10)
	l.cy = Size/2 + r.Uniform(-10, 10)
	l.r = r.Uniform(23, 35) * Size / 128
	const harmonics = 17
	l.amp = make([]float64, harmonics)
	l.phase = make([]float64, harmonics)
	for k := range harmonics {
		l.phase[k] = r.Uniform(0, 2*math.Pi)
	}
	l.texture = valueNoise{r.Uint64(), 3}
	l.opacity = r.Uniform(0.85, 1)
	switch class {
	case Benign:
		l.amp[2] = r.Uniform(0, 0.12) // an ellipse: symmetric about its axes
		l.phase[4] = 2 * l.phase[2]   // keeps the symmetry
		l.amp[4] = r.Uniform(0, 0.015)
		l.edgeBase, l.edgeAmp = r.Uniform(1, 1.8), 0
		tan, dark := rgb{0.62, 0.42, 0.30}, rgb{0.34, 0.21, 0.13}
		l.colours = []rgb{lerp(tan, dark, r.Float())}
		l.darkCtr = r.Uniform(0, 0.08)
	default:
		l.amp[1] = r.Uniform(0.04, 0.12)
		l.amp[2] = r.Uniform(0.03, 0.12)
		l.amp[3] = r.Uniform(0.10, 0.20)
		l.amp[4] = r.Uniform(0.03, 0.08)
		for k := 5; k < harmonics; k++ {
			l.amp[k] = r.Uniform(0.008, 0.035)
		}
		l.edgeBase, l.edgeAmp, l.edgePhase = r.Uniform(1.2, 2.5), r.Uniform(0.5, 1.5), r.Uniform(0, 2*math.Pi)
		palette := []rgb{
			{0.32, 0.19, 0.12}, // dark brown
			{0.14, 0.10, 0.09}, // black
			{0.42, 0.46, 0.56}, // blue-grey
			{0.70, 0.36, 0.36}, // red
			{0.60, 0.42, 0.30}, // light brown
		}
		n := 3 + r.Intn(2)
		for _, i := range permutation(len(palette), r)[:n] {
			l.colours = append(l.colours, palette[i])
		}
		l.field = valueNoise{r.Uint64(), r.Uniform(7, 12)}
		l.field2 = valueNoise{r.Uint64(), 4}
		for range 3 + r.Intn(6) {
			a, d := r.Uniform(0, 2*math.Pi), r.Uniform(0.4, 0.85)
			rad := l.radius(a) * d
			l.globules = append(l.globules, [3]float64{l.cx + rad*math.Cos(a), l.cy + rad*math.Sin(a), r.Uniform(1, 2.2)})
		}
	}
	l.table = make([]float64, tableSize+1)
	for i := range l.table {
		l.table[i] = l.radius(2 * math.Pi * float64(i) / tableSize)
	}
	return l
}

// radiusAt is radius(a) for a in [-π, π], interpolated from the table.
func (l *lesion) radiusAt(a float64) float64 {
	if a < 0 {
		a += 2 * math.Pi
	}
	t := a / (2 * math.Pi) * tableSize
	i := min(int(t), tableSize-1)
	f := t - float64(i)
	return l.table[i] + (l.table[i+1]-l.table[i])*f
}

func permutation(n int, r *rng.Stream) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.Intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// radius is the outline's distance from the centre at angle a.
func (l *lesion) radius(a float64) float64 {
	s := 1.0
	for k := 1; k < len(l.amp); k++ {
		if l.amp[k] != 0 {
			s += l.amp[k] * math.Cos(float64(k)*a+l.phase[k])
		}
	}
	return l.r * max(0.35, s)
}

// extent is the largest distance of the outline from the centre.
func (l *lesion) extent() float64 {
	return slices.Max(l.table)
}

// colour is the lesion's colour at (x, y), at normalised radius t in [0,1].
func (l *lesion) colour(x, y, t float64) rgb {
	tex := 1 + 0.03*l.texture.at(x, y)
	if l.class == Benign {
		return l.colours[0].scale(tex * (1 - l.darkCtr*(1-t*t)))
	}
	// Blotches: the smooth field picks a colour; band edges are soft.
	v := 0.5 + 0.6*l.field.at(x, y) + 0.25*l.field2.at(x, y)
	v = min(0.999, max(0, v)) * float64(len(l.colours))
	i := int(v)
	f := v - float64(i)
	c := l.colours[i]
	if f > 0.8 && i+1 < len(l.colours) {
		c = lerp(c, l.colours[i+1], (f-0.8)/0.2*0.5)
	}
	return c.scale(tex)
}

// draw paints the lesion into img and marks its mask.
func (l *lesion) draw(img canvas, mask []bool) {
	ext := l.extent() + 5
	x0, x1 := max(0, int(l.cx-ext)), min(Size-1, int(l.cx+ext)+1)
	y0, y1 := max(0, int(l.cy-ext)), min(Size-1, int(l.cy+ext)+1)
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			dx, dy := float64(x)+0.5-l.cx, float64(y)+0.5-l.cy
			d := math.Hypot(dx, dy)
			a := math.Atan2(dy, dx)
			rad := l.radiusAt(a)
			w := l.edgeBase
			if l.edgeAmp != 0 {
				w += l.edgeAmp * (1 + math.Sin(3*a+l.edgePhase))
			}
			alpha := min(1, max(0, (rad-d)/w+0.5))
			if alpha <= 0 {
				continue
			}
			i := y*Size + x
			if alpha >= 0.5 {
				mask[i] = true
			}
			c := l.colour(float64(x), float64(y), min(1, d/rad))
			for _, g := range l.globules {
				gd := math.Hypot(float64(x)+0.5-g[0], float64(y)+0.5-g[1])
				if ga := min(1, max(0, g[2]+0.5-gd)); ga > 0 {
					c = lerp(c, rgb{0.10, 0.07, 0.07}, ga)
				}
			}
			// The lesion darkens the skin under it, keeping its mottling.
			img.blend(i, c, alpha*l.opacity)
		}
	}
}

// drawHair draws up to eight dark strands, each a quadratic Bézier curve
// from one edge of the image to another, in half of the images.
func drawHair(img canvas, r *rng.Stream) {
	if r.Float() < 0.5 {
		return
	}
	n := 1 + r.Intn(8)
	edgePoint := func() (float64, float64) {
		t := r.Uniform(0, Size)
		switch r.Intn(4) {
		case 0:
			return t, -2
		case 1:
			return t, Size + 2
		case 2:
			return -2, t
		default:
			return Size + 2, t
		}
	}
	alpha := make([]float64, Size*Size)
	for range n {
		ax, ay := edgePoint()
		bx, by := edgePoint()
		cx, cy := r.Uniform(0, Size), r.Uniform(0, Size)
		width := r.Uniform(0.5, 1.1)
		col := rgb{0.12, 0.08, 0.06}.scale(r.Uniform(0.7, 1.6))
		clear(alpha)
		const steps = 400
		for s := range steps + 1 {
			t := float64(s) / steps
			px := (1-t)*(1-t)*ax + 2*(1-t)*t*cx + t*t*bx
			py := (1-t)*(1-t)*ay + 2*(1-t)*t*cy + t*t*by
			for y := int(py - 2); y <= int(py+2); y++ {
				for x := int(px - 2); x <= int(px+2); x++ {
					if x < 0 || y < 0 || x >= Size || y >= Size {
						continue
					}
					d := math.Hypot(float64(x)+0.5-px, float64(y)+0.5-py)
					alpha[y*Size+x] = max(alpha[y*Size+x], min(1, max(0, width+0.5-d)))
				}
			}
		}
		for i, a := range alpha {
			if a > 0 {
				img.blend(i, col, 0.9*a)
			}
		}
	}
}

// Ruler geometry, in pixels.
const (
	rulerBand = 12 // thickness of the band
	rulerTick = 5  // length of the short ticks; long ticks are twice as long
)

// drawRuler draws a ruler marking along the image edge farthest from the
// lesion: a translucent pale band with a dark baseline and ticks, the long
// ones every fifth. It returns the band's mask.
func drawRuler(img canvas, r *rng.Stream, l *lesion) []bool {
	offset := r.Uniform(2, 7)
	ext := l.extent()
	clearance := []float64{ // top, bottom, left, right
		l.cy - ext, Size - l.cy - ext, l.cx - ext, Size - l.cx - ext,
	}
	edge := r.Intn(4)
	if clearance[edge] < offset+rulerBand {
		for e, c := range clearance {
			if c > clearance[edge] {
				edge = e
			}
		}
	}
	start := r.Uniform(0, Size/3)
	length := r.Uniform(Size/2, Size-start)
	spacing := r.Uniform(5, 7)
	dark := rgb{0.08, 0.08, 0.1}.scale(r.Uniform(0.8, 1.5))
	pale := rgb{0.92, 0.92, 0.86}
	bandAlpha := r.Uniform(0.35, 0.6)
	first := r.Intn(5)
	mask := make([]bool, Size*Size)
	// u runs along the ruler, v across it from the image edge inwards.
	for v := range Size {
		for u := range Size {
			fu, fv := float64(u)+0.5, float64(v)+0.5
			if fv < offset || fv >= offset+rulerBand || fu < start || fu >= start+length {
				continue
			}
			var x, y int
			switch edge {
			case 0:
				x, y = u, v
			case 1:
				x, y = u, Size-1-v
			case 2:
				x, y = v, u
			default:
				x, y = Size-1-v, u
			}
			i := y*Size + x
			mask[i] = true
			img.blend(i, pale, bandAlpha)
			across := fv - offset // 0 at the outer edge of the band
			along := fu - start
			k := int(math.Round(along / spacing))
			tick := math.Abs(along - float64(k)*spacing)
			long := rulerTick
			if (k+first)%5 == 0 {
				long = 2 * rulerTick
			}
			switch {
			case across >= rulerBand-1.5: // the baseline, on the inner side
				img.blend(i, dark, 0.9)
			case tick < 0.7 && across >= rulerBand-1.5-float64(long):
				img.blend(i, dark, 0.9)
			}
		}
	}
	return mask
}

// vignette darkens the image towards its corners; one image in five shows
// the dark circular rim of a dermoscope.
func vignette(img canvas, r *rng.Stream) {
	strength := r.Uniform(0, 0.5)
	reach := r.Uniform(0.55, 0.75) * Size
	rim := r.Float() < 0.2
	rimR := r.Uniform(0.62, 0.72) * Size
	cx, cy := Size/2+r.Uniform(-6, 6), Size/2+r.Uniform(-6, 6)
	for y := range Size {
		for x := range Size {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			f := 1 - strength*smoothstep(0.3*reach, reach, d)
			if rim {
				f *= 1 - 0.92*smoothstep(rimR-3, rimR+3, d)
			}
			img[y*Size+x] = img[y*Size+x].scale(f)
		}
	}
}

// lighting applies a global brightness, a colour temperature and a linear
// gradient of brightness across the image.
func lighting(img canvas, r *rng.Stream) {
	bright := r.Uniform(0.8, 1.15)
	temp := r.Uniform(-0.06, 0.06)
	grad := r.Uniform(-0.25, 0.25)
	a := r.Uniform(0, 2*math.Pi)
	ca, sa := math.Cos(a), math.Sin(a)
	for y := range Size {
		for x := range Size {
			g := 1 + grad*((float64(x)-Size/2)*ca+(float64(y)-Size/2)*sa)/Size
			c := img[y*Size+x].scale(bright * g)
			c[0] *= 1 + temp
			c[2] *= 1 - temp
			img[y*Size+x] = c
		}
	}
}
