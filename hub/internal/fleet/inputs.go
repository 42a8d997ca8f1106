package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// inputs records what a render read from the repository: files (their content), directories
// (their listings), probes for existence and glob patterns. Hashing the same reads against a
// later commit tells whether the render's inputs changed, so a commit elsewhere in the
// repository (another overlay, another app) re-renders nothing: renders are keyed by the hash
// of their inputs, not of the whole tree.
type inputs struct {
	mu    sync.Mutex
	reads map[string]bool // "f:path", "d:path", "e:path", "g:pattern"
}

// recordingFS is a read-only view of a file system that records every read into an inputs.
type recordingFS struct {
	filesys.FileSystem
	in *inputs
}

var _ filesys.FileSystem = recordingFS{}

func (in *inputs) add(kind, path string) {
	in.mu.Lock()
	in.reads[kind+":"+path] = true
	in.mu.Unlock()
}

func record(fsys filesys.FileSystem) (filesys.FileSystem, *inputs) {
	in := &inputs{reads: map[string]bool{}}
	return recordingFS{FileSystem: fsys, in: in}, in
}

func (r recordingFS) Open(path string) (filesys.File, error) {
	r.in.add("f", path)
	return r.FileSystem.Open(path)
}

func (r recordingFS) ReadFile(path string) ([]byte, error) {
	r.in.add("f", path)
	return r.FileSystem.ReadFile(path)
}

func (r recordingFS) ReadDir(path string) ([]string, error) {
	r.in.add("d", path)
	return r.FileSystem.ReadDir(path)
}

func (r recordingFS) Exists(path string) bool {
	r.in.add("e", path)
	return r.FileSystem.Exists(path)
}

func (r recordingFS) IsDir(path string) bool {
	r.in.add("e", path)
	return r.FileSystem.IsDir(path)
}

func (r recordingFS) Glob(pattern string) ([]string, error) {
	r.in.add("g", pattern)
	return r.FileSystem.Glob(pattern)
}

func (r recordingFS) Walk(path string, fn filepath.WalkFunc) error {
	r.in.add("w", path)
	return r.FileSystem.Walk(path, fn)
}

// hash hashes, in fsys, everything the render read.
func (in *inputs) hash(fsys filesys.FileSystem) string {
	in.mu.Lock()
	keys := make([]string, 0, len(in.reads))
	for k := range in.reads {
		keys = append(keys, k)
	}
	in.mu.Unlock()
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		kind, path, _ := strings.Cut(k, ":")
		io.WriteString(h, k)
		switch kind {
		case "f":
			if data, err := fsys.ReadFile(path); err == nil {
				sum := sha256.Sum256(data)
				h.Write(sum[:])
			} else {
				io.WriteString(h, "<absent>")
			}
		case "d":
			names, _ := fsys.ReadDir(path)
			io.WriteString(h, strings.Join(names, "\x00"))
		case "e":
			io.WriteString(h, map[bool]string{true: "<dir>", false: "<file>"}[fsys.IsDir(path)])
			io.WriteString(h, map[bool]string{true: "<exists>", false: "<absent>"}[fsys.Exists(path)])
		case "g":
			matches, _ := fsys.Glob(path)
			io.WriteString(h, strings.Join(matches, "\x00"))
		case "w":
			_ = fsys.Walk(path, func(p string, info os.FileInfo, err error) error {
				io.WriteString(h, p)
				if err == nil && !info.IsDir() {
					if data, err := fsys.ReadFile(p); err == nil {
						sum := sha256.Sum256(data)
						h.Write(sum[:])
					}
				}
				return nil
			})
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rendered is the last render of one repository path: what it read, the hash of that, and the
// bundle it made.
type rendered struct {
	in     *inputs
	hash   string
	bundle *bundle.Bundle
}
