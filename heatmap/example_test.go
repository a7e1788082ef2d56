package heatmap_test

import (
	"fmt"
	"log"

	"github.com/convlens/convlens/heatmap"
)

func ExampleNew() {
	// A 3x2 map, row-major: row 0 is 1 2 3.
	m, err := heatmap.New(3, 2, []float32{1, 2, 3, 4, 5, 6})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.At(2, 0), m.At(0, 1))
	lo, hi := m.MinMax()
	fmt.Println(lo, hi)
	fmt.Println(m.Normalized().Values)

	_, err = heatmap.New(3, 2, []float32{1, 2})
	fmt.Println(err)
	// Output:
	// 3 4
	// 1 6
	// [0 0.2 0.4 0.6 0.8 1]
	// heatmap: map of size 3x2 has 2 values, want 6
}

func ExampleMap_Resize() {
	// Bilinear with half-pixel centres, as cv2.resize: the corners keep
	// their values and the border rows and columns are not faded.
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 2, 3}}
	big, err := m.Resize(4, 4)
	if err != nil {
		log.Fatal(err)
	}
	for y := 0; y < big.Height; y++ {
		fmt.Println(big.Values[y*big.Width : (y+1)*big.Width])
	}
	// Output:
	// [0 0.25 0.75 1]
	// [0.5 0.75 1.25 1.5]
	// [1.5 1.75 2.25 2.5]
	// [2 2.25 2.75 3]
}
