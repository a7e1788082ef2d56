package display_test

import (
	"image"
	"strings"
	"testing"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/heatmap"
)

func TestCohortReportIsSelfContained(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 0.5, 1, 0.25}}
	page, err := display.Cohort(display.CohortInfo{Title: "Audit <of> x", Facts: [][2]string{{"Model", "lesions"}}}).
		Figures(display.CohortFigure{Name: "Pointing game", Value: "98.3%", Interval: "96.2% – 99.3%", N: "295 of 300"}).
		Table(display.CohortTable{Caption: "By true class", Header: []string{"class", "images"}, Rows: [][]string{{"benign", "150"}}}).
		Chart(display.CohortChart{Title: "Energy", XLabel: "share", Labels: []string{"0.0", "0.5"}, Counts: []int{3, 7}}).
		Gallery(display.CohortGallery{Title: "Worst", Cases: []display.CohortCase{{Image: img, Map: m, Caption: "000001", Link: "r-cases.html#page-1"}}}).
		Gallery(display.CohortGallery{Title: "Empty"}).
		HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Audit &lt;of&gt; x", "98.3%", "96.2% – 99.3%", "By true class", "<svg", "<title>0.5: 7</title>",
		`class="chart-png" src="data:image/png;base64,`, `href="r-cases.html#page-1"`, "@page { size: A4", "None."} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http") {
		t.Error("the page loads something or runs a script")
	}
	// The taller bar is drawn taller.
	if !strings.Contains(page, `height="0" fill`) && !strings.Contains(page, `fill="#777"`) {
		t.Error("no bars")
	}
	if _, err := display.Cohort(display.CohortInfo{}).Chart(display.CohortChart{Labels: []string{"a"}, Counts: []int{1, 2}}).HTML(); err == nil {
		t.Error("a chart with more bars than labels was accepted")
	}
	if _, err := display.Cohort(display.CohortInfo{}).Gallery(display.CohortGallery{Cases: []display.CohortCase{{}}}).HTML(); err == nil {
		t.Error("a case without an image was accepted")
	}
}
