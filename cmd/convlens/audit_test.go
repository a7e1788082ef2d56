package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/convlens/convlens/cmd/convlens/internal/audit"
	"github.com/convlens/convlens/datasets/lesiondata"
)

// auditArchiveImages is the size of the archive the command's audit tests share.
const auditArchiveImages = 300

// auditArchive writes the first held-out lesion images to a temporary
// folder of the test, with their masks, ruler regions and labels.csv
// (audit.WriteLesionArchive).
func auditArchive(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := audit.WriteLesionArchive(dir, lesiondata.HeldOut(lesiondata.Standard()), 0, auditArchiveImages); err != nil {
		t.Fatal(err)
	}
	return dir
}

// auditArgs are the arguments of an audit of the shared archive into out.
func auditArgs(dir, out string, extra ...string) []string {
	return append([]string{"audit", "--model", "lesions", "--images", filepath.Join(dir, "labels.csv"),
		"--masks", filepath.Join(dir, "masks"), "--regions", "ruler=" + filepath.Join(dir, "ruler"),
		"--layer", "relu4", "--out", out}, extra...)
}

func TestAuditUsageErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "r.parquet")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "--model", "lesions", "--out", out}, "--images"},
		{[]string{"audit", "--model", "lesions", "--images", dir}, "--out"},
		{[]string{"audit", "--model", "lesions", "--images", dir, "--out", out, "--runner", "spark"}, "unknown --runner"},
		{[]string{"audit", "--model", "lesions", "--images", dir, "--out", out, "--metrics", "road,auc"}, `unknown metric "auc"`},
		{[]string{"audit", "--model", "lesions", "--images", dir, "--out", out, "--regions", "ruler"}, "NAME=DIR"},
		{[]string{"audit", "--model", "lesions", "--images", dir, "--out", out, "--masks", filepath.Join(dir, "none")}, "not a folder"},
		{[]string{"audit", "--model", "lesions", "--images", dir, "--out", out, "--report", out}, "same file"},
		{[]string{"audit", "--model", "lesions", "--images", dir, "--out", out, "--", "--endpoint=x"}, "Beam's"},
	} {
		code, _, errOut := convlens(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args[3:], code, errOut, c.want)
		}
	}
}

// An audit writes every image once, says how fast on stderr, refuses to
// resume with another layer or method, and writes a report whose gallery
// pictures link to their pages.
func TestAuditWritesResultsAndReport(t *testing.T) {
	dir := auditArchive(t)
	tmp := t.TempDir()
	out, report := filepath.Join(tmp, "r.parquet"), filepath.Join(tmp, "report.html")
	code, stdout, stderr := convlens(t, auditArgs(dir, out, "--report", report, "--batch", "16")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "300 image(s) explained (0 error row(s)), 0 already there") {
		t.Errorf("stdout: %q", stdout)
	}
	if !strings.Contains(stderr, "images/s") || !strings.Contains(stderr, "left") || !strings.Contains(stderr, "300/300 images") {
		t.Errorf("no progress line with images/s and time left on stderr: %q", stderr)
	}
	ids, err := audit.ReadIDs(out)
	if err != nil || len(ids) != auditArchiveImages {
		t.Fatalf("%d ids (%v), want %d", len(ids), err, auditArchiveImages)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := os.ReadFile(audit.CasesPath(report))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Pointing game: ground-truth mask", "Energy inside the ruler", "By true class", "suspicious",
		`href="report-cases.html#page-1"`, "<svg", "@page { size: A4"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(string(page), "<script") || strings.Contains(string(page), "http://") || strings.Contains(string(page), "https://") {
		t.Error("report is not self-contained: it has a script or a link out")
	}
	if !strings.Contains(string(cases), `id="page-1"`) || !strings.Contains(string(cases), "heat-map report") {
		t.Error("the cases file is not in the single-image report's format")
	}
	// Again with the same arguments: nothing to do.
	code, stdout, stderr = convlens(t, auditArgs(dir, out)...)
	if code != 0 || !strings.Contains(stdout, "0 image(s) explained (0 error row(s)), 300 already there") {
		t.Errorf("rerun: exit %d, %q, %q", code, stdout, stderr)
	}
	// Another layer or method: refused, in one line, the file untouched.
	before, _ := os.ReadFile(out)
	for _, extra := range [][]string{{"--method", "hirescam"}} {
		args := auditArgs(dir, out, extra...)
		code, _, stderr = convlens(t, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code != 1 || !strings.Contains(last, "results file made with other settings") || !strings.Contains(last, "method gradcam, not hirescam") {
			t.Errorf("%v: exit %d, stderr %q", extra, code, stderr)
		}
	}
	code, _, stderr = convlens(t, append(auditArgs(dir, out)[:len(auditArgs(dir, out))-4], "--layer", "relu3", "--out", out)...)
	if code != 1 || !strings.Contains(stderr, "layer relu4, not relu3") {
		t.Errorf("--layer relu3: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = convlens(t, "audit", "--model", "lesions-shortcut", "--images", filepath.Join(dir, "labels.csv"), "--layer", "relu4", "--out", out)
	if code != 1 || !strings.Contains(stderr, "model SHA-256") {
		t.Errorf("another model: exit %d, stderr %q", code, stderr)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Error("a refused run changed the results file")
	}
}

// compareWithArrowCount reads the results with Apache Arrow's Parquet
// reader, independent of the writer, and checks its rows and ids.
func compareWithArrowCount(t *testing.T, path string, n int) {
	t.Helper()
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("arrow: %v", err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("arrow: %v", err)
	}
	defer tbl.Release()
	if tbl.NumRows() != int64(n) {
		t.Fatalf("arrow reads %d rows, want %d", tbl.NumRows(), n)
	}
	col := tbl.Column(tbl.Schema().FieldIndices("id")[0])
	seen := map[string]bool{}
	for _, ch := range col.Data().Chunks() {
		s := ch.(*array.String)
		for i := range s.Len() {
			if seen[s.Value(i)] {
				t.Errorf("arrow: id %s twice", s.Value(i))
			}
			seen[s.Value(i)] = true
		}
	}
	if len(seen) != n {
		t.Errorf("arrow: %d distinct ids, want %d", len(seen), n)
	}
}
