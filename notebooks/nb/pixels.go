package nb

// The two layers 01-pixels.ipynb computes by hand on a 28x28 digit, a
// dense layer and a 3x3 convolution: the cells that teach them show them
// with Source, and the cell that moves the digit uses both, so that it
// runs first after a kernel restart too.

// Dense computes W·x for W [out, len(x)], row-major.
func Dense(w, x []float32) []float32 {
	out := make([]float32, len(w)/len(x))
	for o := range out {
		var s float64
		for i, v := range x {
			s += float64(w[o*len(x)+i]) * float64(v)
		}
		out[o] = float32(s)
	}
	return out
}

// Conv3x3 slides the 3x3 filter k (row-major) over the 28x28 image x, zero "same" padding.
func Conv3x3(x []float32, k [9]float32) []float32 {
	const side = 28
	out := make([]float32, len(x))
	for r := range side {
		for c := range side {
			var s float32
			for dr := -1; dr <= 1; dr++ {
				for dc := -1; dc <= 1; dc++ {
					rr, cc := r+dr, c+dc
					if rr >= 0 && rr < side && cc >= 0 && cc < side {
						s += k[(dr+1)*3+dc+1] * x[rr*side+cc]
					}
				}
			}
			out[r*side+c] = s
		}
	}
	return out
}

// Three hand-made 3x3 filters for Conv3x3.
var (
	SobelX = [9]float32{-1, 0, 1, -2, 0, 2, -1, 0, 1} // vertical edges: dark-to-bright left to right
	SobelY = [9]float32{-1, -2, -1, 0, 0, 0, 1, 2, 1} // horizontal edges
	Blur   = [9]float32{1, 1, 1, 1, 1, 1, 1, 1, 1}    // (a sum; divide by 9 for the average)
)
