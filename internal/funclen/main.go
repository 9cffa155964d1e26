// Command funclen lists the longest functions of berth's Go code (tests
// and testdata left out), longest first, so that the codebase's hubs are
// measured the same way each time:
//
//	go run ./internal/funclen [-n 10] [-min 0] [DIR]
//
// A function's length is its lines from the func keyword to the closing
// brace, its doc comment not counted.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type fn struct {
	name, pos string
	lines     int
}

func main() {
	n := flag.Int("n", 10, "how many to list")
	least := flag.Int("min", 0, "list only functions at least this long")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	fns, err := collect(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "funclen:", err)
		os.Exit(1)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].lines > fns[j].lines })
	for i, f := range fns {
		if i == *n || f.lines < *least {
			break
		}
		fmt.Printf("%4d  %-40s %s\n", f.lines, f.name, f.pos)
	}
}

// collect measures every function declared in the non-test Go files
// under root.
func collect(root string) ([]fn, error) {
	var fns []fn
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root:
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if d, ok := decl.(*ast.FuncDecl); ok && d.Body != nil {
				fns = append(fns, fn{name: funcName(d), pos: fset.Position(d.Pos()).String(),
					lines: fset.Position(d.End()).Line - fset.Position(d.Pos()).Line + 1})
			}
		}
		return nil
	})
	return fns, err
}

// funcName is Recv.Name for a method, Name for a function.
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + d.Name.Name
	}
	return d.Name.Name
}
