package gradcam

import (
	"fmt"

	"github.com/gomlx/gomlx/core/graph"
)

// OcclusionMethod is Captum's sliding-window occlusion (Zeiler and Fergus,
// 2014): a Window×Window square, in every channel, slides over the input
// with step Stride along each axis, from the top-left corner, window
// starts 0, Stride, 2·Stride, ... up to and including the first start whose
// window reaches the last row (column); windows past the edge are cut
// there, as Captum's are: 1 + ⌈(H − Window)/Stride⌉ positions down, the
// same across. Copy p replaces window p by the constant Baseline (in the
// model's input space: 0 is the mean image for ImageNet-normalised models).
// The map at pixel ij is the mean, over the windows that cover it, of the
// drop in score y − y_p, where y is the image's score (the logit for a
// class target) and y_p that of copy p; 0 where no window covers the pixel
// (Stride > Window). One forward pass per window and image.
type OcclusionMethod struct {
	Window, Stride int
	Baseline       float64
}

// Occlusion with Captum's usual settings for images: 16×16 windows, stride 8,
// baseline 0 (729 passes an image at 224×224, 49 at 64×64).
var Occlusion Method = OcclusionMethod{Window: 16, Stride: 8}

func (m OcclusionMethod) Name() string                   { return "occlusion" }
func (OcclusionMethod) Map(a, g *graph.Node) *graph.Node { return maskMap(a, g) }
func (m OcclusionMethod) fill() float64                  { return m.Baseline }
func (OcclusionMethod) probabilities() bool              { return false }

// geometry returns the window side and stride within an axis of n pixels,
// and the number of window positions along it.
func (m OcclusionMethod) geometry(n int) (win, stride, count int) {
	win, stride = min(max(m.Window, 1), n), max(m.Stride, 1)
	return win, stride, 1 + (n-win+stride-1)/stride
}

func (m OcclusionMethod) masks(h, w int) int {
	_, _, ny := m.geometry(h)
	_, _, nx := m.geometry(w)
	return ny * nx
}

// window returns window p's rows [y0,y1) and columns [x0,x1).
func (m OcclusionMethod) window(p, h, w int) (y0, y1, x0, x1 int) {
	wy, sy, _ := m.geometry(h)
	wx, sx, nx := m.geometry(w)
	y0, x0 = (p/nx)*sy, (p%nx)*sx
	return y0, min(y0+wy, h), x0, min(x0+wx, w)
}

func (m OcclusionMethod) mask(p, h, w int, dst []float32) {
	y0, y1, x0, x1 := m.window(p, h, w)
	for i := range dst {
		dst[i] = 1
	}
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			dst[y*w+x] = 0
		}
	}
}

func (m OcclusionMethod) attribute(base float64, scores []float64, h, w int) []float64 {
	sum, count := make([]float64, h*w), make([]float64, h*w)
	for p, s := range scores {
		y0, y1, x0, x1 := m.window(p, h, w)
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				sum[y*w+x] += base - s
				count[y*w+x]++
			}
		}
	}
	for i := range sum {
		if count[i] > 0 {
			sum[i] /= count[i]
		}
	}
	return sum
}

// String names the settings, for the CAM's graph cache.
func (m OcclusionMethod) String() string {
	return fmt.Sprintf("occlusion(window=%d,stride=%d,baseline=%g)", m.Window, m.Stride, m.Baseline)
}
