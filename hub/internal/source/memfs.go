package source

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// memFS is a read-only fs.FS over loaded files; directories are implied by the paths. A
// rejected file is listed, but opening it fails with the reason.
type memFS struct {
	files    map[string][]byte
	rejected map[string]error
	dirs     map[string][]fs.DirEntry // "." for the root
}

var (
	_ fs.ReadDirFS   = (*memFS)(nil)
	_ fs.ReadFileFS  = (*memFS)(nil)
	_ fs.File        = (*file)(nil)
	_ fs.ReadDirFile = (*dir)(nil)
	_ fs.FileInfo    = info{}
)

func newMemFS(files map[string][]byte, rejected map[string]error) *memFS {
	m := &memFS{files: files, rejected: rejected, dirs: map[string][]fs.DirEntry{".": nil}}
	seen := map[string]bool{}
	paths := append(sortedKeys(files), sortedKeys(rejected)...)
	slices.Sort(paths)
	for _, p := range paths {
		child := info{name: path.Base(p), size: int64(len(files[p]))}
		for dir := path.Dir(p); ; dir = path.Dir(dir) {
			m.dirs[dir] = append(m.dirs[dir], fs.FileInfoToDirEntry(child))
			if dir == "." || seen[dir] {
				break
			}
			seen[dir] = true
			child = info{name: path.Base(dir), dir: true}
		}
	}
	for _, entries := range m.dirs {
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return m
}

func (m *memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if err := m.rejected[name]; err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if data, ok := m.files[name]; ok {
		return &file{info: info{name: path.Base(name), size: int64(len(data))}, r: bytes.NewReader(data)}, nil
	}
	if entries, ok := m.dirs[name]; ok {
		return &dir{info: info{name: path.Base(name), dir: true}, entries: entries}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	if err := m.rejected[name]; err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if data, ok := m.files[name]; ok {
		return slices.Clone(data), nil
	}
	if _, ok := m.dirs[name]; ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, ok := m.dirs[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(entries), nil
}

type info struct {
	name string
	size int64
	dir  bool
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return i.size }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.dir }
func (i info) Sys() any           { return nil }
func (i info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type file struct {
	info info
	r    *bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *file) Close() error               { return nil }

type dir struct {
	info    info
	entries []fs.DirEntry
	off     int
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}
func (d *dir) Close() error { return nil }

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}
