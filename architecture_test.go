package berth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The tests of ARCHITECTURE.md keep it true as the code moves: a file it
// names that is gone, or a function that left the file its table says it
// is in, fails here, so the change that moved it updates the map too.

func architecture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestArchitectureFiles: every source file ARCHITECTURE.md names exists.
func TestArchitectureFiles(t *testing.T) {
	doc := architecture(t)
	names := regexp.MustCompile(`\b(?:[a-z0-9_]+/)+(?:[a-z0-9_]+\.(?:go|py)|[A-Z_]+\.md)\b|\b[A-Za-z_]+\.md\b`).FindAllString(doc, -1)
	if len(names) < 20 {
		t.Fatalf("ARCHITECTURE.md names only %d files: is the pattern still right?", len(names))
	}
	for _, name := range names {
		if _, err := os.Stat(name); err != nil {
			t.Errorf("ARCHITECTURE.md names %s: %v", name, err)
		}
	}
}

// TestArchitectureFunctions: each row of ARCHITECTURE.md's "Where things
// happen" names a function or method declared in the file it gives.
func TestArchitectureFunctions(t *testing.T) {
	_, table, ok := strings.Cut(architecture(t), "\n## Where things happen\n")
	if !ok {
		t.Fatal(`ARCHITECTURE.md has no "## Where things happen" section`)
	}
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 3 || !strings.HasSuffix(cells[1], ".go") {
			continue
		}
		rows++
		file, fn := cells[1], cells[2]
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("%q: %v", cells[0], err)
			continue
		}
		found := false
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == fn {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: %s declares no function %s", cells[0], file, fn)
		}
	}
	if rows < 12 {
		t.Errorf("the table has %d rows, want a dozen behaviours at least", rows)
	}
}
