package logging

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryLogKeyIsShared fails when a log call anywhere in the module (tests aside) names an
// attribute with a string literal instead of one of the Key constants, so that a key means the
// same on hub and agent and can be queried.
func TestEveryLogKeyIsShared(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, ".pb.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, pos := range literalKeys(f) {
			found = append(found, fset.Position(pos).String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: a log attribute key written as a literal; add a Key constant to shared/logging", f)
	}
}

// literalKeys returns where slog-style calls (Info, Warn, Error, Debug with a literal message,
// and With) pass a string literal in a key position.
func literalKeys(f *ast.File) []token.Pos {
	var out []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		start := 1
		switch sel.Sel.Name {
		case "Info", "Warn", "Error", "Debug":
			if len(c.Args) == 0 {
				return true
			}
			if _, ok := c.Args[0].(*ast.BasicLit); !ok {
				return true
			}
		case "With":
			start = 0
		default:
			return true
		}
		for i := start; i < len(c.Args); i++ {
			switch a := c.Args[i].(type) {
			case *ast.BasicLit:
				if a.Kind == token.STRING {
					out = append(out, a.Pos())
				}
				i++ // skip the value
			case *ast.CallExpr:
				// an slog.Attr (slog.Int, logging.Err, ...) takes one position
			default:
				i++ // a constant key and its value
			}
		}
		return true
	})
	return out
}
