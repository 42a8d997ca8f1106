package source

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSymlinks(t *testing.T) {
	repo := newGitRepo(t)
	repo.write(map[string]string{
		"base/deploy.yaml":     "deploy\n",
		"base/svc/svc.yaml":    "svc\n",
		"overlays/prod/k.yaml": "k\n",
	})
	repo.symlink("overlays/prod/deploy.yaml", "../../base/deploy.yaml") // file, relative
	repo.symlink("overlays/prod/base", "../../base")                    // directory
	repo.symlink("overlays/chain.yaml", "prod/deploy.yaml")             // link to a link
	repo.symlink("overlays/via.yaml", "prod/base/svc/svc.yaml")         // through a linked directory
	repo.symlink("docs/dangling", "nowhere.md")                         // inside, resolves to nothing
	repo.commit("links")
	f := newFetcher(t, Options{AllowLocal: true})
	s, err := f.Fetch(context.Background(), repo.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := s.FS()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"base/deploy.yaml":                "deploy\n",
		"base/svc/svc.yaml":               "svc\n",
		"overlays/prod/k.yaml":            "k\n",
		"overlays/prod/deploy.yaml":       "deploy\n",
		"overlays/prod/base/deploy.yaml":  "deploy\n",
		"overlays/prod/base/svc/svc.yaml": "svc\n",
		"overlays/chain.yaml":             "deploy\n",
		"overlays/via.yaml":               "svc\n",
	}
	got := map[string]string{}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		got[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files:\n got %v\nwant %v", got, want)
	}
	kfs, err := s.FileSystem()
	if err != nil {
		t.Fatal(err)
	}
	if data, err := kfs.ReadFile("/overlays/prod/base/svc/svc.yaml"); err != nil || string(data) != "svc\n" {
		t.Errorf("kustomize fs: %q, %v", data, err)
	}
	if !kfs.IsDir("/overlays/prod/base") {
		t.Errorf("kustomize fs: /overlays/prod/base is not a directory")
	}
}

func TestSymlinksRejected(t *testing.T) {
	tests := []struct {
		link, target, want string
	}{
		{"secrets.yaml", "/etc/passwd", `symlink "secrets.yaml": absolute target "/etc/passwd" is not allowed`},
		{"a/up.yaml", "../../outside.yaml", `symlink "a/up.yaml": target "../../outside.yaml" is outside the repository`},
		{"a/b/dir", "../../..", `symlink "a/b/dir": target "../../.." is outside the repository`},
		{"a/loop", "..", `symlink "a/loop": points to a directory containing it`},
		{"self", "self", `too many levels of symbolic links`},
	}
	for _, tt := range tests {
		t.Run(tt.link, func(t *testing.T) {
			repo := newGitRepo(t)
			repo.write(map[string]string{"a/ok.yaml": "ok\n"})
			repo.symlink(tt.link, tt.target)
			repo.commit("bad link")
			f := newFetcher(t, Options{AllowLocal: true})
			s, err := f.Fetch(context.Background(), repo.dir, "HEAD")
			if err != nil {
				t.Fatal(err)
			}
			// The link is rejected, not the tree: reading it fails, the rest reads.
			kfs, err := s.FileSystem()
			if err != nil {
				t.Fatal(err)
			}
			_, err = kfs.ReadFile("/" + tt.link)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), repo.dir) {
				t.Errorf("ReadFile error = %v, want %q naming the repository", err, tt.want)
			}
			if _, err := kfs.Open("/" + tt.link); err == nil {
				t.Errorf("Open accepted the link")
			}
			if data, err := kfs.ReadFile("/a/ok.yaml"); err != nil || string(data) != "ok\n" {
				t.Errorf("a/ok.yaml = %q, %v", data, err)
			}
			fsys, err := s.FS()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fs.ReadFile(fsys, tt.link); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FS ReadFile error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	repo := newGitRepo(t)
	repo.write(map[string]string{
		"small.yaml":     "x\n",
		"big/data.yaml":  strings.Repeat("y", 2000),
		"more/one.yaml":  "1\n",
		"more/two.yaml":  "2\n",
		"more/three.yml": "3\n",
	})
	repo.symlink("big/copy.yaml", "data.yaml")
	repo.commit("sizes")
	tests := []struct {
		name string
		opts Options
		read string // a file whose reading fails with want; "" when the whole tree does
		want string
	}{
		{"file size", Options{MaxFileSize: 1000}, "big/data.yaml", `file "big/data.yaml": 2000 bytes, more than 1000`},
		{"file size through a symlink", Options{MaxFileSize: 1000}, "big/copy.yaml", `file "big/data.yaml": 2000 bytes, more than 1000`},
		{"file count", Options{MaxRepoFiles: 5}, "", `more than 5 files`},
		{"total size counts symlinked copies", Options{MaxTotalSize: 3000}, "", `more than 3000 bytes in all (at "big/copy.yaml")`},
		{"within limits", Options{MaxFileSize: 2000, MaxRepoFiles: 6, MaxTotalSize: 5000}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.AllowLocal = true
			f := newFetcher(t, tt.opts)
			s, err := f.Fetch(context.Background(), repo.dir, "main")
			if err != nil {
				t.Fatal(err)
			}
			kfs, err := s.FileSystem()
			if tt.read != "" {
				if err != nil {
					t.Fatal(err)
				}
				if data, err := kfs.ReadFile("/small.yaml"); err != nil || string(data) != "x\n" {
					t.Errorf("small.yaml = %q, %v", data, err)
				}
				_, err = kfs.ReadFile("/" + tt.read)
			}
			if tt.want == "" {
				if err != nil {
					t.Errorf("FileSystem: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrTooLarge) {
				t.Errorf("FileSystem error = %v, want %q wrapping ErrTooLarge", err, tt.want)
			}
		})
	}
}

func TestMemFS(t *testing.T) {
	fsys := newMemFS(map[string][]byte{
		"a.yaml":         []byte("a"),
		"apps/b.yaml":    []byte("bb"),
		"apps/x/c.yaml":  []byte("ccc"),
		"apps/x/y/d.yml": nil,
	}, nil)
	if err := fstest.TestFS(fsys, "a.yaml", "apps/b.yaml", "apps/x/c.yaml", "apps/x/y/d.yml"); err != nil {
		t.Fatal(err)
	}
}
