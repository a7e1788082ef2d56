// Package celldata generates microscope images of single blood cells, red
// or white, that differ mainly by colour and only a little by texture: the
// data of the classic error-analysis story in which a model trained on
// greyed-out images does poorly because colour was what mattered.
//
// Every image is [Size]×[Size] RGB: a pale plasma background with a few
// platelets, one round cell near the centre, a brightness change and sensor
// noise. The classes:
//
//   - [Red] cells are stained pink-red; [White] cells purple (the
//     nucleus stain). Both colours are drawn so that their luma,
//     0.299R + 0.587G + 0.114B (ITU-R BT.601, what [Luma] and the grey
//     models compute), has the same distribution: greying removes the
//     colour cue exactly.
//   - Texture: each cell has a texture level t in [0,1] that sets the
//     strength of a fine granular pattern (t) and of the pale centre of a
//     biconcave disc (1−t). Red cells draw t from [0, 0.6], white ones from
//     [0.4, 1]: in the overlap nothing tells them apart without colour, so
//     even a perfect greyscale classifier errs on about one image in six.
//
// Size, position and brightness are drawn from the same ranges for both
// classes. Generation is deterministic: the same seed and class give the same
// bytes.
package celldata

import (
	"image"
	"math"

	"github.com/convlens/convlens/internal/rng"
)

// Size is the side of the generated images, in pixels.
const Size = 64

// Class is the ground-truth class of a cell.
type Class uint8

const (
	// Red is a red blood cell (erythrocyte).
	Red Class = 0
	// White is a white blood cell (leukocyte).
	White Class = 1
)

// ClassNames are the names of the classes, indexed by [Class].
var ClassNames = []string{"red", "white"}

func (c Class) String() string {
	if int(c) < len(ClassNames) {
		return ClassNames[c]
	}
	return "class?"
}

// Luma is the grey value of a colour: 0.299R + 0.587G + 0.114B (ITU-R BT.601).
func Luma(r, g, b float64) float64 { return 0.299*r + 0.587*g + 0.114*b }

// Sample is one generated image with its ground truth.
type Sample struct {
	// Image is the picture, Size×Size, opaque.
	Image *image.NRGBA
	// Mask marks the cell's pixels (row-major, Size×Size).
	Mask []bool
	// Class is the ground truth.
	Class Class
	// Texture is the cell's texture level t (see the package doc).
	Texture float64
	// Seed is the seed the image was generated from.
	Seed uint64
}

// Float32 writes the image into dst, Size×Size×3 values in [0,1], row-major,
// channels last (the layout of embedded.Cells' input).
func (s *Sample) Float32(dst []float32) {
	for i := range Size * Size {
		p := s.Image.Pix[4*i : 4*i+3]
		dst[3*i], dst[3*i+1], dst[3*i+2] = float32(p[0])/255, float32(p[1])/255, float32(p[2])/255
	}
}

// Set is an endless, deterministic sequence of samples: sample i has class
// i mod 2 and a seed mixed from the set's seed and i.
type Set struct{ Seed uint64 }

// HeldOutSeed is the seed of the held-out cells every evaluation uses;
// training draws from other seeds.
const HeldOutSeed = 0x43454c4c53 // "CELLS"

// HeldOut is the held-out set.
func HeldOut() Set { return Set{Seed: HeldOutSeed} }

// SampleSeed is the seed of sample i.
func (s Set) SampleSeed(i int) uint64 { return rng.Mix(s.Seed, uint64(i)) }

// Class is the class of sample i.
func (s Set) Class(i int) Class { return Class(i % 2) }

// Sample generates sample i.
func (s Set) Sample(i int) *Sample { return Generate(s.SampleSeed(i), s.Class(i)) }

// Chroma directions, each with zero luma, so that adding them to a grey
// changes the hue but not the grey value.
var (
	redChroma    = zeroLuma([3]float64{1, -0.4, -0.3})
	purpleChroma = zeroLuma([3]float64{0.2, -0.5, 0.9})
)

func zeroLuma(d [3]float64) [3]float64 {
	y := Luma(d[0], d[1], d[2])
	return [3]float64{d[0] - y, d[1] - y, d[2] - y}
}

// Generate draws one image of the given class from seed.
func Generate(seed uint64, class Class) *Sample {
	r := rng.NewStream(seed, 1)
	img := make([][3]float64, Size*Size)
	// Plasma: pale cream, smooth brightness variation.
	bg := [3]float64{r.Uniform(0.88, 0.95), r.Uniform(0.84, 0.9), r.Uniform(0.8, 0.88)}
	gx, gy := r.Uniform(-0.04, 0.04), r.Uniform(-0.04, 0.04)
	for y := range Size {
		for x := range Size {
			f := 1 + gx*(float64(x)/Size-0.5) + gy*(float64(y)/Size-0.5)
			img[y*Size+x] = [3]float64{bg[0] * f, bg[1] * f, bg[2] * f}
		}
	}

	// The cell.
	cx, cy := Size/2+r.Uniform(-8, 8), Size/2+r.Uniform(-8, 8)
	rad := r.Uniform(13, 20)
	ecc, tilt := r.Uniform(0, 0.08), r.Uniform(0, math.Pi)
	luma := r.Uniform(0.35, 0.62)
	sat := r.Uniform(0.1, 0.2)
	chroma := redChroma
	tex := r.Uniform(0, 0.6)
	if class == White {
		chroma = purpleChroma
		tex = r.Uniform(0.4, 1)
	}
	col := [3]float64{luma + sat*chroma[0], luma + sat*chroma[1], luma + sat*chroma[2]}
	grainSeed := r.Uint64()
	mask := make([]bool, Size*Size)
	for y := range Size {
		for x := range Size {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			a := math.Atan2(dy, dx)
			edge := rad * (1 + ecc*math.Cos(2*(a-tilt)))
			d := math.Hypot(dx, dy)
			alpha := min(1, max(0, edge-d+0.5))
			if alpha <= 0 {
				continue
			}
			i := y*Size + x
			mask[i] = alpha >= 0.5
			t := d / edge
			// Luma changes only: a darker rim, the pale centre of a
			// biconcave disc (1−tex), fine granules (tex).
			shade := 1 - 0.08*smoothstep(0.75, 1, t)
			shade += 0.25 * (1 - tex) * (1 - smoothstep(0, 0.55, t))
			shade += 0.30 * tex * (grain(grainSeed, x/2, y/2) - 0.5)
			c := [3]float64{col[0] + luma*(shade-1), col[1] + luma*(shade-1), col[2] + luma*(shade-1)}
			for k := range 3 {
				img[i][k] += (c[k] - img[i][k]) * alpha
			}
		}
	}

	// Platelets: small purple dots, in cells of either class.
	for range int(r.Uniform(0, 4)) {
		px, py := r.Uniform(2, Size-2), r.Uniform(2, Size-2)
		pr := r.Uniform(0.8, 1.6)
		pc := [3]float64{0.6, 0.45, 0.7}
		for y := int(py - 3); y <= int(py+3); y++ {
			for x := int(px - 3); x <= int(px+3); x++ {
				if x < 0 || y < 0 || x >= Size || y >= Size || mask[y*Size+x] {
					continue
				}
				if a := min(1, max(0, pr+0.5-math.Hypot(float64(x)+0.5-px, float64(y)+0.5-py))); a > 0 {
					for k := range 3 {
						img[y*Size+x][k] += (pc[k] - img[y*Size+x][k]) * a
					}
				}
			}
		}
	}

	// Brightness and sensor noise.
	bright := r.Uniform(0.9, 1.1)
	s := &Sample{Class: class, Texture: tex, Seed: seed, Mask: mask,
		Image: image.NewNRGBA(image.Rect(0, 0, Size, Size))}
	for i, p := range img {
		for k := range 3 {
			v := p[k]*bright + 0.02*math.Sqrt(3)*(2*r.Float()-1)
			s.Image.Pix[4*i+k] = uint8(math.Round(255 * min(1, max(0, v))))
		}
		s.Image.Pix[4*i+3] = 255
	}
	return s
}

// grain is a value in [0,1) fixed per (x, y) cell of the granule pattern.
func grain(seed uint64, x, y int) float64 {
	return float64(rng.Mix(seed, uint64(uint32(x))<<32|uint64(uint32(y)))>>11) / (1 << 53)
}

func smoothstep(e0, e1, x float64) float64 {
	t := min(1, max(0, (x-e0)/(e1-e0)))
	return t * t * (3 - 2*t)
}
