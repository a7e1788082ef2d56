package nb

import (
	"bytes"
	"encoding/json"
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// view returns the explorer view among the outputs: its HTML, state and overlay.
func view(t *testing.T, got []recorded) (string, map[string]any, []byte) {
	t.Helper()
	for _, o := range got {
		h, _ := o.data[protocol.MIMETextHTML].(string)
		if !strings.Contains(h, "convlens-explorer-view") {
			continue
		}
		m := regexp.MustCompile(`data-state="([^"]*)"`).FindStringSubmatch(h)
		if m == nil {
			t.Fatalf("view without state:\n%.500s", h)
		}
		var state map[string]any
		if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &state); err != nil {
			t.Fatal(err)
		}
		for _, mime := range []protocol.MIMEType{protocol.MIMEImagePNG, mimeJPEG} {
			if raw, ok := o.data[mime].([]byte); ok {
				return h, state, raw
			}
		}
		return h, state, nil
	}
	t.Fatal("no explorer view among the outputs")
	return "", nil, nil
}

func TestExplorerWithoutFrontEndDrawsItsStateAndSaysSo(t *testing.T) {
	m := Model()
	stages := Stages(m)
	var overlays [][]byte
	for _, layer := range []string{stages[len(stages)-1], stages[0]} {
		got := record(t)
		Explorer(m).Layer(layer).Show()
		h, state, png := view(t, *got)
		if state["layer"] != layer {
			t.Errorf("view shows layer %v, want %s", state["layer"], layer)
		}
		for _, want := range []string{"convlens-explorer-overlay", "data-chart=", "positive evidence", "computed in"} {
			if !strings.Contains(h, want) {
				t.Errorf("view lacks %q", want)
			}
		}
		if len(png) == 0 {
			t.Error("view has no picture of the overlay for front ends without HTML")
		}
		overlays = append(overlays, png)
		last := (*got)[len(*got)-1]
		if txt, _ := last.data[protocol.MIMETextPlain].(string); !strings.Contains(txt, "make notebook") {
			t.Errorf("last output does not say how to get the controls: %q", txt)
		}
	}
	if bytes.Equal(overlays[0], overlays[1]) {
		t.Error("the overlay at the first stage equals the one at the last: moving the layer changes nothing")
	}
}

// The evidence control: against the class, the map is the counterfactual
// one (gradcam.Counterfactual), another picture, and the view says so.
func TestExplorerShowsTheEvidenceAgainstAClass(t *testing.T) {
	m := Model()
	var overlays [][]byte
	for _, against := range []bool{false, true} {
		got := record(t)
		Explorer(m).Against(against).Show()
		h, state, png := view(t, *got)
		if state["against"] != against {
			t.Errorf("view state says against=%v, want %v", state["against"], against)
		}
		if says := strings.Contains(h, "the evidence against"); says != against {
			t.Errorf("against=%v: the caption says %q about the evidence against", against, map[bool]string{true: "it", false: "nothing"}[says])
		}
		overlays = append(overlays, png)
	}
	if bytes.Equal(overlays[0], overlays[1]) {
		t.Error("the overlay against the class equals the one for it")
	}
}
