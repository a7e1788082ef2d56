package beamaudit

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/convlens/convlens/cmd/convlens/internal/audit"
	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/models/embedded"
	"github.com/convlens/convlens/models/modeltest"
)

func TestMain(m *testing.M) {
	beam.Init()
	os.Exit(m.Run())
}

// images is the size of the archive: a few hundred, as CI allows.
const images = 200

// The pipeline on Prism, two shards at once, writes the rows the
// single-process engine writes, image by image, with the same file
// identity; rerun, it has nothing left to do.
func TestPrismEqualsLocal(t *testing.T) {
	dir := t.TempDir()
	if err := audit.WriteLesionArchive(dir, lesiondata.HeldOut(lesiondata.Standard()), 0, images); err != nil {
		t.Fatal(err)
	}
	src := audit.Source{Images: filepath.Join(dir, "labels.csv"), Masks: filepath.Join(dir, "masks"),
		Regions: []audit.NamedDir{{Name: "ruler", Dir: filepath.Join(dir, "ruler")}}, Labels: embedded.LesionsLabels()}
	s := audit.Settings{ModelSHA256: "lesions-test", Layer: embedded.LesionsGradCAMLayer, Batch: 16, Masks: true,
		Regions: src.Regions, Metrics: []string{audit.MetricDrop}}
	m, err := embedded.Lesions()
	if err != nil {
		t.Fatal(err)
	}
	e, err := audit.NewExplainer(modeltest.Backend(t), m, s)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	local := filepath.Join(dir, "local.parquet")
	if _, err := audit.Run(context.Background(), e, audit.Options{Source: src, Out: local}); err != nil {
		t.Fatal(err)
	}
	job := Job{Model: embedded.LesionsName, Settings: e.Settings(), Identity: e.Identity(), Source: src,
		Out: filepath.Join(dir, "beam.parquet"), Shards: 2, MinRowGroup: 32}
	job.Settings.Layer = e.Layer()
	mostRunning.Store(0)
	sum, err := Run(context.Background(), "prism", job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Written != images || sum.Skipped != 0 {
		t.Errorf("summary %+v, want %d written", sum, images)
	}
	if n := mostRunning.Load(); n != 2 {
		t.Errorf("Prism ran at most %d shards at once, want 2", n)
	}
	byID := func(path string) (map[string]audit.Row, []string) {
		rows := map[string]audit.Row{}
		var order []string
		if err := audit.ReadRows(path, func(r audit.Row) error {
			if _, dup := rows[r.ID]; dup {
				t.Errorf("%s: id %s twice", filepath.Base(path), r.ID)
			}
			rows[r.ID] = r
			order = append(order, r.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return rows, order
	}
	want, order := byID(local)
	got, _ := byID(job.Out)
	if len(got) != len(want) || len(want) != images {
		t.Fatalf("beam wrote %d rows, local %d, want %d", len(got), len(want), images)
	}
	differ := 0
	for _, id := range order {
		if !reflect.DeepEqual(got[id], want[id]) {
			if differ++; differ <= 3 {
				t.Errorf("image %s:\nbeam  %+v\nlocal %+v", id, got[id], want[id])
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d rows differ", differ, images)
	}
	again, err := Run(context.Background(), "prism", job, nil)
	if err != nil || again.Written != 0 || again.Skipped != images {
		t.Errorf("rerun: %+v, %v; want all %d skipped", again, err, images)
	}
}
