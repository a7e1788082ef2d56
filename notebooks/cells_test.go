package notebooks_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEachCellCompilesOnItsOwn checks what a reader meets after a kernel
// restart, when GoNB has forgotten every declaration: each Go cell,
// compiled as GoNB compiles it (its declarations, then what follows `%%`
// as main) and nothing else, must compile. What cells share lives in the
// package nb, not in a cell. The cells are type-checked with `go vet`
// against this checkout, all at once, together with a cell that uses a
// function no cell declares, which must fail: the check can fail.
func TestEachCellCompilesOnItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles every cell of every notebook (-short)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The module of a kernel cell, as scripts/notebook-env.sh sets it up:
	// convlens from this checkout, with convlens' requirements.
	requires := regexp.MustCompile(`(?s)require \(.*?\)\n`).FindAllString(string(mod), -1)
	gomod := fmt.Sprintf("module cellcheck\n\ngo 1.27.3\n\nrequire github.com/convlens/convlens v0.0.0\n\n%s\nreplace github.com/convlens/convlens => %s\n",
		strings.Join(requires, "\n"), root)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	where := map[string]string{} // package folder: notebook and cell, for messages
	// The control: a cell that uses what an earlier cell would declare.
	const control = "control_undeclared"
	prog, err := program("import \"fmt\"\n\n%%\nfmt.Println(declaredInAnotherCell(3))\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, control), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, control, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range notebooks(t) {
		nb, err := readNotebook(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		for _, c := range nb.Cells {
			src := text(c.Source)
			if c.Type != "code" || !isGo(src) {
				continue
			}
			prog, err := program(src)
			if err != nil {
				t.Errorf("%s: cell %s: %v", name, c.ID, err)
				continue
			}
			dir := fmt.Sprintf("%s_%s", strings.NewReplacer("-", "_", ".ipynb", "").Replace(name), c.ID)
			where[dir] = fmt.Sprintf("%s cell %s", name, c.ID)
			if err := os.MkdirAll(filepath.Join(work, dir), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(work, dir, "main.go"), []byte(prog), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "vet", "./...")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	out, err := cmd.CombinedOutput()
	t.Logf("go vet of %d cells: %v", len(where), time.Since(start).Round(time.Second))
	// Report each failing cell with its first errors.
	failed := map[string][]string{}
	re := regexp.MustCompile(`(?m)^(?:vet: )?\.?/?([A-Za-z0-9_]+)/main\.go:(\d+):\d+: (.*)$`)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		failed[m[1]] = append(failed[m[1]], "line "+m[2]+": "+m[3])
	}
	if err == nil || !strings.Contains(strings.Join(failed[control], "\n"), "undefined: declaredInAnotherCell") {
		t.Fatalf("go vet did not report the control cell, which uses a function no cell declares: the check cannot fail (%v)\n%s", err, tail(string(out), 4000))
	}
	delete(failed, control)
	dirs := make([]string, 0, len(failed))
	for d := range failed {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		msgs := failed[d]
		t.Errorf("%s does not compile on its own, as after a kernel restart (move what it shares with other cells into notebooks/nb): %s",
			where[d], strings.Join(msgs[:min(3, len(msgs))], "; "))
	}
}

// isGo reports whether a cell holds Go (not a %%sh script or a shell line).
func isGo(src string) bool {
	s := strings.TrimSpace(src)
	return s != "" && !strings.HasPrefix(s, "%%sh") && !strings.HasPrefix(s, "%%script") && !strings.HasPrefix(s, "!")
}

// program composes the Go program GoNB compiles for the cell src in a
// fresh kernel: its declarations, the imports that code uses (GoNB runs
// goimports, which drops the others), then its main part.
func program(src string) (string, error) {
	declPart, body, _ := strings.Cut(src, "\n%%\n")
	if strings.HasPrefix(src, "%%\n") {
		declPart, body = "", strings.TrimPrefix(src, "%%\n")
	}
	code := "package main\n" + declPart
	cellSet := token.NewFileSet()
	cell, err := parser.ParseFile(cellSet, "cell.go", code, 0)
	if err != nil {
		return "", err
	}
	imports := map[string]string{} // path: name ("" for the default)
	for _, im := range cell.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := ""
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[p] = name
	}
	var decls []string
	for _, d := range cell.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			continue
		}
		decls = append(decls, code[cellSet.Position(d.Pos()).Offset:cellSet.Position(d.End()).Offset])
	}
	rest := strings.Join(decls, "\n\n") + "\n\nfunc main() {\n" + body + "\n}\n"
	// Keep the imports the code refers to.
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "rest.go", "package main\n"+rest, 0)
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n")
	paths := make([]string, 0, len(imports))
	for p := range imports {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		name := imports[p]
		local := name
		if local == "" {
			local = defaultName(p)
		}
		if !used[local] {
			continue
		}
		fmt.Fprintf(&b, "\t%s %q\n", name, p)
	}
	b.WriteString(")\n\n" + rest)
	return b.String(), nil
}

// defaultName is the name an import path is used under without an alias:
// its last element, or the one before a major version suffix.
func defaultName(path string) string {
	parts := strings.Split(path, "/")
	last := parts[len(parts)-1]
	if len(parts) > 1 && regexp.MustCompile(`^v[0-9]+$`).MatchString(last) {
		last = parts[len(parts)-2]
	}
	return strings.ReplaceAll(last, "-", "_")
}
