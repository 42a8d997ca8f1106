package apps

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// LoadDir reads every *.yaml, *.yml and *.json file under dir, recursively and in sorted
// order, skipping directories whose names start with a dot. Applications are named after
// their file, joined to dir. One bad file or document never hides the good ones; an
// application name defined more than once is an error naming every file, and none of its
// definitions is returned; nor is an application that depends on one no manifest defines, or
// that is part of a dependsOn cycle (depends.go).
func LoadDir(dir string) ([]*Application, []error) {
	return load(os.DirFS(dir), ".", func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) })
}

// LoadFS is LoadDir over fsys, from root (a slash-separated fs.FS path; "." for all of it).
func LoadFS(fsys fs.FS, root string) ([]*Application, []error) {
	return load(fsys, root, func(p string) string { return p })
}

func load(fsys fs.FS, root string, display func(string) string) ([]*Application, []error) {
	var (
		all  []*Application
		errs []error
	)
	walkErr := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", display(p), err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch path.Ext(p) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", display(p), err))
			return nil
		}
		apps, fileErrs := Parse(display(p), data)
		all = append(all, apps...)
		errs = append(errs, fileErrs...)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", display(root), walkErr))
	}
	apps, dupErrs := dropDuplicates(all)
	errs = append(errs, dupErrs...)
	apps, depErrs := checkDependencies(apps, errs)
	return apps, append(errs, depErrs...)
}

// dropDuplicates removes every application whose name is defined more than once, with an
// error per extra definition naming the files.
func dropDuplicates(all []*Application) ([]*Application, []error) {
	byName := map[string][]*Application{}
	for _, a := range all {
		byName[a.Name] = append(byName[a.Name], a)
	}
	var (
		apps []*Application
		errs []error
	)
	for _, a := range all {
		defs := byName[a.Name]
		if len(defs) == 1 {
			apps = append(apps, a)
			continue
		}
		if defs[0] != a {
			errs = append(errs, &Error{File: a.SourceFile, App: a.Name, Field: "metadata.name",
				Err: fmt.Errorf("duplicate: also defined in %s", defs[0].SourceFile)})
		}
	}
	slices.SortStableFunc(apps, func(x, y *Application) int { return strings.Compare(x.Name, y.Name) })
	return apps, errs
}
