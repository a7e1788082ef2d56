package audit

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/convlens/convlens/models/modeltest"
)

// archiveImages is how many held-out lesion images the tests write once.
const archiveImages = 120

var (
	archiveOnce sync.Once
	archiveDir  string
	archiveErr  error
)

// archive writes the first archiveImages held-out lesion images (the set
// `convlens eval lesions` uses) to a folder shared by the package's tests.
func archive(t testing.TB) string {
	t.Helper()
	archiveOnce.Do(func() {
		archiveDir, archiveErr = os.MkdirTemp("", "convlens-audit-archive-")
		if archiveErr == nil {
			archiveErr = WriteLesionArchive(archiveDir, lesiondata.HeldOut(lesiondata.Standard()), 0, archiveImages)
		}
	})
	if archiveErr != nil {
		t.Fatal(archiveErr)
	}
	return archiveDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if archiveDir != "" {
		os.RemoveAll(archiveDir)
	}
	os.Exit(code)
}

func lesionSource(dir string) Source {
	return Source{
		Images:  filepath.Join(dir, "labels.csv"),
		Masks:   filepath.Join(dir, "masks"),
		Regions: []NamedDir{{"ruler", filepath.Join(dir, "ruler")}},
		Labels:  embedded.LesionsLabels(),
	}
}

func lesionsModel(t testing.TB) models.Model {
	t.Helper()
	m, err := embedded.Lesions()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lesionExplainer(t testing.TB, s Settings) *Explainer {
	t.Helper()
	if s.ModelSHA256 == "" {
		s.ModelSHA256 = "test-model"
	}
	s.Masks = true
	s.Regions = lesionSource("dir").Regions[:0]
	s.Regions = append(s.Regions, NamedDir{"ruler", filepath.Join(archive(t), "ruler")})
	if s.Layer == "" {
		s.Layer = embedded.LesionsGradCAMLayer
	}
	e, err := NewExplainer(modeltest.Backend(t), lesionsModel(t), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func readAll(t testing.TB, path string) []Row {
	t.Helper()
	var rows []Row
	if err := ReadRows(path, func(r Row) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return rows
}

// The audit of the held-out lesion images written to disk gives the figures
// `convlens eval lesions` computes from the generator in memory.
func TestAuditAgreesWithEvalLesions(t *testing.T) {
	dir := archive(t)
	out := filepath.Join(t.TempDir(), "results.parquet")
	e := lesionExplainer(t, Settings{Batch: 16})
	sum, err := Run(context.Background(), e, Options{Source: lesionSource(dir), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Written != archiveImages || sum.Errors != 0 || sum.Skipped != 0 {
		t.Fatalf("summary %+v, want %d written, no errors", sum, archiveImages)
	}
	rows := readAll(t, out)
	var st Stats
	for i := range rows {
		st.Add(&rows[i])
	}
	st.Finish()
	want, err := evaluation.MeasureLesions(modeltest.Backend(t), lesionsModel(t), lesiondata.HeldOut(lesiondata.Standard()), archiveImages)
	if err != nil {
		t.Fatal(err)
	}
	mask, ruler := st.Region(MaskRegion), st.Region("ruler")
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy", st.Accuracy.Value(), want.Accuracy()},
		{"pointing_game", mask.Pointing.Value(), want.PointingGame()},
		{"energy_in_mask", mask.Energy.Value, want.Energy},
		{"energy_on_ruler", ruler.Energy.Value, want.RulerEnergy},
		{"images with a ruler", float64(ruler.Energy.N), float64(want.RulerImages)},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: audit %.6f, eval lesions %.6f", c.name, c.got, c.want)
		}
	}
	t.Logf("accuracy %.4f, pointing %.4f, energy in mask %.4f, on ruler %.4f over %d",
		st.Accuracy.Value(), mask.Pointing.Value(), mask.Energy.Value, ruler.Energy.Value, ruler.Energy.N)
}
