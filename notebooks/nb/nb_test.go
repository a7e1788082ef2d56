package nb

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/convlens/convlens/display"
	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// recorded is one output the hooks caught.
type recorded struct {
	data map[protocol.MIMEType]any
	text string
}

// record replaces the display hooks for the test and returns what they get.
func record(t *testing.T) *[]recorded {
	t.Helper()
	var got []recorded
	p, f, x := publish, flush, exit
	publish = func(data map[protocol.MIMEType]any, text string) { got = append(got, recorded{data, text}) }
	flush = func() {}
	exit = func(code int) { panic("exit") }
	t.Setenv(protocol.GONB_TMP_DIR_ENV, t.TempDir())
	t.Cleanup(func() { publish, flush, exit = p, f, x })
	return &got
}

func TestShowSendsEChartsOnceAndEachChartWithItsPicture(t *testing.T) {
	got := record(t)
	t.Setenv(display.EChartsJSEnv, filepath.Join(t.TempDir(), "echarts.min.js"))
	if err := os.WriteFile(os.Getenv(display.EChartsJSEnv), []byte("window.echarts = {init: function () {}};"), 0o644); err != nil {
		t.Fatal(err)
	}
	chart := display.TopKChart([]float64{0.1, 0.7, 0.2}, []string{"a", "b", "c"}, 2).Title("top-2")
	Show(chart)
	Show(chart)
	if len(*got) != 3 {
		t.Fatalf("two charts gave %d outputs, want 3 (echarts once, then the two charts)", len(*got))
	}
	loader := (*got)[0].data[protocol.MIMETextHTML].(string)
	if !strings.Contains(loader, "window.echarts = {init") || strings.Count(loader, "<script>") != 1 {
		t.Errorf("first output is not the echarts loader:\n%.300s", loader)
	}
	var ids []string
	for _, o := range (*got)[1:] {
		h, _ := o.data[protocol.MIMETextHTML].(string)
		if strings.Contains(h, "window.echarts = {init") {
			t.Error("a chart carries its own copy of echarts")
		}
		if !strings.Contains(h, `<img id="`) || !strings.Contains(h, "data:image/png;base64,") {
			t.Errorf("chart fragment has no static picture:\n%.400s", h)
		}
		raw, _ := o.data[protocol.MIMEImagePNG].([]byte)
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("chart output's image/png: %v", err)
		}
		if img.Bounds().Dx() != 720 {
			t.Errorf("chart picture is %v wide, want the chart's 720", img.Bounds().Dx())
		}
		ids = append(ids, regexp.MustCompile(`data-chart="([^"]+)"`).FindStringSubmatch(h)[1])
	}
	if ids[0] == ids[1] {
		t.Errorf("two charts share the element id %s", ids[0])
	}
}

func ExampleTable() {
	Show(NewTable("layer", "channels", "blank fraction").
		Row("layer1", 16, 0.0).
		Row("layer2.1.relu_1", 32, 0.03125))
	// Output:
	// layer            channels  blank fraction
	// layer1                 16               0
	// layer2.1.relu_1        32         0.03125
}

func TestFitKeepsProportions(t *testing.T) {
	img := Fit(Cat(), 224)
	if b := img.Bounds(); b.Dx() != 224 || b.Dy() != 149 {
		t.Errorf("the 451x300 photograph fitted to 224 is %dx%d, want 224x149", b.Dx(), b.Dy())
	}
}

func TestDigitIsTheFirstOfItsLabel(t *testing.T) {
	i, m := Digit(3)
	if m.Width != 28 || m.Height != 28 {
		t.Fatalf("digit is %dx%d", m.Width, m.Height)
	}
	var ink int
	for _, v := range m.Values {
		if v > 0 {
			ink++
		}
	}
	if i < 0 || ink < 50 {
		t.Errorf("digit 3 is image %d with %d inked pixels", i, ink)
	}
}

func TestCheckStopsWithOneLine(t *testing.T) {
	record(t)
	defer func() {
		if recover() == nil {
			t.Error("Check(err) did not stop the cell")
		}
	}()
	Check(os.ErrNotExist)
}

func TestSourceShowsTheNamedDeclarations(t *testing.T) {
	got := record(t)
	Source("Check", "Table.Title", "OutDirEnv")
	if len(*got) != 1 {
		t.Fatalf("Source gave %d outputs, want one code block", len(*got))
	}
	code := (*got)[0].data[protocol.MIMETextPlain].(string)
	for _, want := range []string{
		"// Check stops the cell if err is not nil, printing one line\n// \"convlens: <err>\" on its standard error.\nfunc Check(err error) {",
		"func (t *Table) Title(s string) *Table",
		"const OutDirEnv = ",
	} {
		if !strings.Contains(code, want) {
			t.Errorf("Source's code lacks %q:\n%s", want, code)
		}
	}
	if strings.Contains(code, "func Must") || strings.Contains(code, "func (t *Table) Row") {
		t.Errorf("Source shows more than it was asked for:\n%s", code)
	}
	if md := (*got)[0].data["text/markdown"].(string); !strings.HasPrefix(md, "```go\n// Check") || !strings.HasSuffix(md, "\n```\n") {
		t.Errorf("Source's markdown is not a Go code block:\n%s", md)
	}
	defer func() {
		if recover() == nil {
			t.Error("Source of an unknown name did not stop the cell")
		}
	}()
	Source("Table.Nothing")
}

var _ image.Image // keep the import for helpers added later
