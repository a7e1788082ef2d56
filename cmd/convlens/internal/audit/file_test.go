package audit

import (
	"context"
	"errors"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/models/modeltest"
)

// records lists the first n images of the shared archive.
func records(t testing.TB, n int) []Record {
	t.Helper()
	var recs []Record
	err := lesionSource(archive(t)).Walk(func(r Record) error {
		if len(recs) == n {
			return errStop
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	return recs
}

// What Run writes is what the explainer computed, read back by Arrow,
// nulls, lists and nested regions included.
func TestArrowReadsTheRowsWritten(t *testing.T) {
	e := lesionExplainer(t, Settings{Batch: 8, Metrics: []string{MetricDrop}})
	want := e.Explain(records(t, 40))
	out := filepath.Join(t.TempDir(), "r.parquet")
	a, err := OpenAppender(out, e.Identity())
	if err != nil {
		t.Fatal(err)
	}
	// Three row groups, as a run's flushes make them.
	for _, part := range [][]Row{want[:7], want[7:30], want[30:]} {
		if err := a.Append(part); err != nil {
			t.Fatal(err)
		}
		compareArrow(t, out, want[:int(a.Rows())])
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	compareArrow(t, out, want)
	r := want[0]
	if r.Label == nil || r.Predicted == nil || len(r.Map) != int(r.MapHeight*r.MapWidth) || len(r.Map) == 0 ||
		r.Drop == nil || r.ROADGap != nil || len(r.TopClasses) != 3 || r.Region(MaskRegion) == nil || r.Region("ruler") == nil {
		t.Errorf("row 0 lacks fields: %+v", r)
	}
}

// An append cut short at any byte, as by a kill, leaves the previous
// footer in force: the file reopens at its last complete append, and a
// reader sees the rows up to it.
func TestInterruptedAppendIsCutBack(t *testing.T) {
	e := lesionExplainer(t, Settings{Batch: 8})
	rows := e.Explain(records(t, 24))
	dir := t.TempDir()
	full := filepath.Join(dir, "full.parquet")
	a, err := OpenAppender(full, e.Identity())
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for _, part := range [][]Row{rows[:8], rows[8:16], rows[16:]} {
		if err := a.Append(part); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, a.end)
	}
	a.f.Close() // no compaction: the file as a kill leaves it
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cuts := []int64{ends[1], ends[1] + 1, ends[2] - 1, ends[2] - 5}
	for range 12 {
		cuts = append(cuts, ends[1]+rng.Int64N(ends[2]-ends[1]))
	}
	for _, cut := range cuts {
		path := filepath.Join(dir, "cut.parquet")
		if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		wantRows := 16
		if cut == ends[2] {
			wantRows = 24
		}
		ids, err := ReadIDs(path)
		if err != nil || len(ids) != wantRows {
			t.Fatalf("cut at %d: %d ids (%v), want %d", cut, len(ids), err, wantRows)
		}
		b, err := OpenAppender(path, e.Identity())
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if b.Rows() != int64(wantRows) || b.end != ends[1] && cut != ends[2] {
			t.Fatalf("cut at %d: reopened with %d rows ending at %d, want %d ending at %d", cut, b.Rows(), b.end, wantRows, ends[1])
		}
		if err := b.Append(rows[16:]); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		compareArrow(t, path, rows)
	}
}

// Unreferenced footers are dropped when they outgrow the rows, and at Close.
func TestAppenderCompacts(t *testing.T) {
	e := lesionExplainer(t, Settings{Batch: 8})
	rows := e.Explain(records(t, 8))
	path := filepath.Join(t.TempDir(), "r.parquet")
	a, err := OpenAppender(path, e.Identity())
	if err != nil {
		t.Fatal(err)
	}
	var want []Row
	for i := range 60 {
		if err := a.Append(rows[i%8 : i%8+1]); err != nil {
			t.Fatal(err)
		}
		want = append(want, rows[i%8])
		if dead := a.end - a.live; dead > a.live/2+1<<20+int64(footerSize(&a.meta))+12 {
			t.Fatalf("after %d appends: %d unreferenced bytes for %d of rows", i+1, dead, a.live)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	compareArrow(t, path, want)
	b, err := OpenAppender(path, e.Identity())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if extra := fi.Size() - b.live - int64(footerSize(&b.meta)) - 12; extra != 0 {
		t.Errorf("closed file has %d bytes besides its row groups and one footer", extra)
	}
}

// A file made with another model, method or layer is refused with one line.
func TestResumeRefusesOtherSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.parquet")
	id := Identity{ModelSHA256: "aaaa", Method: "gradcam", Layer: "relu4"}
	a, err := OpenAppender(path, id)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	for _, other := range []Identity{
		{ModelSHA256: "bbbb", Method: "gradcam", Layer: "relu4"},
		{ModelSHA256: "aaaa", Method: "hirescam", Layer: "relu4"},
		{ModelSHA256: "aaaa", Method: "gradcam", Layer: "relu3"},
	} {
		_, err := OpenAppender(path, other)
		if !errors.Is(err, ErrMismatch) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: err = %v, want one line wrapping ErrMismatch", other, err)
		}
	}
	if _, err := OpenAppender(path, id); err != nil {
		t.Errorf("same settings: %v", err)
	}
	notOurs := filepath.Join(t.TempDir(), "x.parquet")
	os.WriteFile(notOurs, []byte("id,path\n"), 0o644)
	if _, err := OpenAppender(notOurs, id); err == nil || !strings.Contains(err.Error(), "not a Parquet file") {
		t.Errorf("a CSV as --out: err = %v", err)
	}
}

// Bad images become error rows; the others in their batch are unaffected.
func TestBadImagesBecomeErrorRows(t *testing.T) {
	dir := t.TempDir()
	set := lesiondata.HeldOut(lesiondata.Standard())
	if err := WriteLesionArchive(dir, set, 0, 6); err != nil {
		t.Fatal(err)
	}
	img := func(name string) string { return filepath.Join(dir, "images", name) }
	os.WriteFile(img("000001.png"), []byte("not a png"), 0o644)
	f, _ := os.Create(img("000002.png"))
	png.Encode(f, image.NewNRGBA(image.Rect(0, 0, 64, 64)))
	f.Close()
	f, _ = os.Create(filepath.Join(dir, "masks", "000003.png"))
	png.Encode(f, image.NewGray(image.Rect(0, 0, 10, 10)))
	f.Close()
	os.Remove(filepath.Join(dir, "masks", "000004.png")) // no mask: the region is absent, not an error
	src := Source{Images: filepath.Join(dir, "images"), Masks: filepath.Join(dir, "masks")}
	s := Settings{ModelSHA256: "m", Layer: "relu4", Batch: 8, Masks: true}
	e, err := NewExplainer(modeltest.Backend(t), lesionsModel(t), s)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out := filepath.Join(dir, "r.parquet")
	sum, err := Run(context.Background(), e, Options{Source: src, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Written != 6 || sum.Errors != 3 {
		t.Errorf("summary %+v, want 6 written, 3 errors", sum)
	}
	rows := readAll(t, out)
	wantErr := map[string]string{
		"000001.png": "decoding image",
		"000002.png": "image is 64×64 pixels; the model takes 128×128",
		"000003.png": "mask: ",
	}
	good := e.Explain(records(t, 6))
	for i, r := range rows {
		if w, bad := wantErr[r.ID]; bad {
			if r.Error == nil || !strings.Contains(*r.Error, w) || r.Predicted != nil || len(r.Map) != 0 {
				t.Errorf("%s: error %q, predicted %v; want an error row saying %q", r.ID, deref(r.Error), r.Predicted, w)
			}
			continue
		}
		if r.Error != nil {
			t.Errorf("%s: unexpected error %s", r.ID, *r.Error)
			continue
		}
		if *r.Predicted != *good[i].Predicted || *r.Probability != *good[i].Probability {
			t.Errorf("%s: predicted %d (%.6f) beside bad images, %d (%.6f) alone", r.ID, *r.Predicted, *r.Probability, *good[i].Predicted, *good[i].Probability)
		}
		m := r.Region(MaskRegion)
		if r.ID == "000004.png" {
			if m == nil || m.Present || m.EnergyInside != nil {
				t.Errorf("%s: region %+v, want absent", r.ID, m)
			}
		} else if m == nil || !m.Present || m.EnergyInside == nil {
			t.Errorf("%s: region %+v, want present", r.ID, m)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// Two runs never write one file at once, and a copy left by a run killed
// while compacting is removed.
func TestAppenderLocksAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.parquet")
	id := Identity{ModelSHA256: "a", Method: "gradcam", Layer: "relu4"}
	stale := filepath.Join(dir, ".r.parquet.tmp-123abc")
	os.WriteFile(stale, []byte("half a copy"), 0o644)
	a, err := OpenAppender(path, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale copy left: %v", err)
	}
	if _, err := OpenAppender(path, id); err == nil || !strings.Contains(err.Error(), "another convlens audit is writing it") {
		t.Errorf("second writer: err = %v", err)
	}
	a.Close()
	b, err := OpenAppender(path, id)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	b.Close()
}
