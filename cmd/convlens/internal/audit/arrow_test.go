package audit

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// arrowRows reads a Parquet file with Apache Arrow's Go reader, an
// implementation independent of the one that wrote it, and returns each
// row as plain values: strings, int64, float64, bool, []any for lists,
// map[string]any for structs, nil for nulls.
func arrowRows(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rdr, err := file.NewParquetReader(f, file.WithReadProps(parquet.NewReaderProperties(memory.DefaultAllocator)))
	if err != nil {
		t.Fatalf("arrow: opening %s: %v", path, err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("arrow: reading %s: %v", path, err)
	}
	defer tbl.Release()
	rows := make([]map[string]any, tbl.NumRows())
	for i := range rows {
		rows[i] = map[string]any{}
	}
	for c := range int(tbl.NumCols()) {
		col := tbl.Column(c)
		i := 0
		for _, chunk := range col.Data().Chunks() {
			for j := range chunk.Len() {
				rows[i][col.Name()] = arrowValue(t, chunk, j)
				i++
			}
		}
	}
	return rows
}

func arrowValue(t testing.TB, a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.List:
		lo, hi := a.ValueOffsets(i)
		out := []any{}
		for j := lo; j < hi; j++ {
			out = append(out, arrowValue(t, a.ListValues(), int(j)))
		}
		return out
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		out := map[string]any{}
		for f := range st.NumFields() {
			out[st.Field(f).Name] = arrowValue(t, a.Field(f), i)
		}
		return out
	}
	t.Fatalf("arrow: unexpected column type %s", a.DataType())
	return nil
}

// plain is a Row as arrowRows returns rows, written out field by field.
func plain(r Row) map[string]any {
	opt := func(p any) any {
		v := reflect.ValueOf(p)
		if v.IsNil() {
			return nil
		}
		switch e := v.Elem().Interface().(type) {
		case int32:
			return int64(e)
		default:
			return e
		}
	}
	ints := []any{}
	for _, c := range r.TopClasses {
		ints = append(ints, int64(c))
	}
	probs := []any{}
	for _, p := range r.TopProbabilities {
		probs = append(probs, p)
	}
	mp := []any{}
	for _, v := range r.Map {
		mp = append(mp, float64(v))
	}
	regions := []any{}
	for _, g := range r.Regions {
		regions = append(regions, map[string]any{"name": g.Name, "present": g.Present,
			"pointing_hit": opt(g.PointingHit), "energy_inside": opt(g.EnergyInside)})
	}
	return map[string]any{
		"id": r.ID, "path": r.Path, "label": opt(r.Label),
		"predicted": opt(r.Predicted), "probability": opt(r.Probability), "predicted_name": opt(r.PredictedName),
		"top_classes": ints, "top_probabilities": probs, "explained": opt(r.Explained),
		"map_height": int64(r.MapHeight), "map_width": int64(r.MapWidth), "map": mp, "regions": regions,
		"road_gap": opt(r.ROADGap), "drop": opt(r.Drop),
		"model_sha256": r.ModelSHA256, "method": r.Method, "layer": r.Layer, "convlens_version": r.Version,
		"error": opt(r.Error),
	}
}

// compareArrow checks that the file holds exactly want, in order, as Arrow reads it.
func compareArrow(t *testing.T, path string, want []Row) {
	t.Helper()
	got := arrowRows(t, path)
	if len(got) != len(want) {
		t.Fatalf("arrow reads %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		w := plain(want[i])
		if !reflect.DeepEqual(got[i], w) {
			for k := range w {
				if !reflect.DeepEqual(got[i][k], w[k]) {
					t.Errorf("row %d (%s), column %s: arrow reads %v, wrote %v", i, want[i].ID, k, short(got[i][k]), short(w[k]))
				}
			}
			for k := range got[i] {
				if _, ok := w[k]; !ok {
					t.Errorf("row %d: arrow reads an unexpected column %s", i, k)
				}
			}
			if t.Failed() {
				return
			}
		}
	}
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
