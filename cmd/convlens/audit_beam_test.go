package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/convlens/convlens/cmd/convlens/internal/audit"
)

// `convlens audit --runner prism` writes the rows `--runner local` writes.
func TestAuditOnPrismEqualsLocal(t *testing.T) {
	dir := auditArchive(t)
	tmp := t.TempDir()
	local, prism := filepath.Join(tmp, "local.parquet"), filepath.Join(tmp, "prism.parquet")
	if code, _, stderr := convlens(t, auditArgs(dir, local)...); code != 0 {
		t.Fatalf("local: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := convlens(t, auditArgs(dir, prism, "--runner", "prism")...)
	if code != 0 || !strings.Contains(stdout, "300 image(s) explained") {
		t.Fatalf("prism: exit %d: %s %s", code, stdout, stderr)
	}
	rows := func(path string) map[string]audit.Row {
		m := map[string]audit.Row{}
		if err := audit.ReadRows(path, func(r audit.Row) error { m[r.ID] = r; return nil }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if a, b := rows(local), rows(prism); len(a) != auditArchiveImages || !reflect.DeepEqual(a, b) {
		t.Errorf("prism's %d rows differ from local's %d", len(b), len(a))
	}
}
