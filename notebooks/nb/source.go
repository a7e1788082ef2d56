package nb

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// Source shows the Go source of declarations of this package, named as
// they are written in it: a function ("Dense"), a method
// ("CAMInputs.Weights"), a type, or a variable or constant (with the group
// it is declared in). Each comes with its doc comment, as one code block.
//
// The notebooks teach some functions that later cells use again (the steps
// of Grad-CAM, a convolution): those live here, so that every cell works
// first after a kernel restart, and the cell that teaches one shows its
// source with Source. The reader reads the code that runs, and it exists
// once.
func Source(names ...string) {
	files := sourceFiles()
	var parts []string
	for _, name := range names {
		src, ok := declSource(files, name)
		if !ok {
			stop(fmt.Errorf("nb.Source: package nb declares no %q", name))
		}
		parts = append(parts, src)
	}
	code := strings.Join(parts, "\n\n")
	publish(map[protocol.MIMEType]any{
		"text/markdown":        "```go\n" + code + "\n```\n",
		protocol.MIMETextPlain: code,
	}, code)
}

// parsedFile is one source file of this package, parsed, with its text.
type parsedFile struct {
	fset *token.FileSet
	file *ast.File
	src  []byte
}

// sourceDir is the folder of this package's source: where it was compiled
// from, else notebooks/nb in the checkout.
func sourceDir() string {
	if _, file, _, ok := runtime.Caller(0); ok && fileExists(file) {
		return filepath.Dir(file)
	}
	return Path("notebooks", "nb")
}

// sourceFiles parses the package's files, tests left out, in name order.
func sourceFiles() []parsedFile {
	dir := sourceDir()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	Check(err)
	sort.Strings(paths)
	var out []parsedFile
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src := Must(os.ReadFile(p))
		fset := token.NewFileSet()
		f := Must(parser.ParseFile(fset, p, src, parser.ParseComments))
		out = append(out, parsedFile{fset, f, src})
	}
	if len(out) == 0 {
		stop(fmt.Errorf("nb.Source: no Go files in %s", dir))
	}
	return out
}

// declSource returns the text of the declaration called name ("F",
// "T.Method", "T", "V"), from its doc comment to its end.
func declSource(files []parsedFile, name string) (string, bool) {
	recv, fn, isMethod := strings.Cut(name, ".")
	if !isMethod {
		recv, fn = "", name
	}
	for _, pf := range files {
		for _, d := range pf.file.Decls {
			var doc *ast.CommentGroup
			found := false
			switch d := d.(type) {
			case *ast.FuncDecl:
				doc = d.Doc
				found = d.Name.Name == fn && receiver(d) == recv
			case *ast.GenDecl:
				doc = d.Doc
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						found = found || !isMethod && s.Name.Name == name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							found = found || !isMethod && n.Name == name
						}
					}
				}
			}
			if !found {
				continue
			}
			start := d.Pos()
			if doc != nil {
				start = doc.Pos()
			}
			return string(pf.src[pf.fset.Position(start).Offset:pf.fset.Position(d.End()).Offset]), true
		}
	}
	return "", false
}

// receiver is the name of a method's receiver type ("" for a function).
func receiver(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return ""
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
