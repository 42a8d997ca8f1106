package charts

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCacheAfterRestart: a cache opened on a directory a previous run filled takes the
// archives' modification times for their last use, evicts the oldest first, and drops an
// archive whose content no longer matches its name.
func TestCacheAfterRestart(t *testing.T) {
	dir := t.TempDir()
	first, err := openCache(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	blobs := [][]byte{[]byte("old archive"), []byte("newer archive"), []byte("newest archive")}
	for i, data := range blobs {
		if err := first.put(digestOf(data), data); err != nil {
			t.Fatal(err)
		}
		mod := time.Now().Add(time.Duration(i-10) * time.Hour)
		if err := os.Chtimes(filepath.Join(dir, "sha256", hexOf(digestOf(data))), mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sha256", ".tmp-123"), []byte("interrupted"), 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(blobs[1]) + len(blobs[2]) + 5)
	c, err := openCache(dir, size)
	if err != nil {
		t.Fatal(err)
	}
	if n, count := c.usage(); count != 3 || n != int64(len(blobs[0])+len(blobs[1])+len(blobs[2])) {
		t.Fatalf("usage = %d bytes in %d archives, want the 3 archives", n, count)
	}
	small := []byte("tiny")
	if err := c.put(digestOf(small), small); err != nil {
		t.Fatal(err)
	}
	if c.get(digestOf(blobs[0])) != nil {
		t.Error("the oldest archive was kept")
	}
	if c.get(digestOf(blobs[2])) == nil || c.get(digestOf(small)) == nil {
		t.Error("the newest archive or the one just put was evicted")
	}
	if n, _ := c.usage(); n > size {
		t.Errorf("usage %d over the bound %d", n, size)
	}
	// A file whose content is not its digest any more is a miss, and gone.
	if err := os.WriteFile(filepath.Join(dir, "sha256", hexOf(digestOf(small))), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.get(digestOf(small)) != nil {
		t.Error("a tampered archive was served")
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256", hexOf(digestOf(small)))); !os.IsNotExist(err) {
		t.Errorf("the tampered archive is still there: %v", err)
	}
}

func TestRedirectsDropCredentialsForAnotherHost(t *testing.T) {
	for _, tt := range []struct {
		from, to string
		keep     bool
	}{
		{"https://charts.example.com/index.yaml", "https://charts.example.com/charts/a.tgz", true},
		{"https://charts.example.com/charts/a.tgz", "https://cdn.charts.example.com/a.tgz", false},
		{"https://charts.example.com/charts/a.tgz", "https://charts.example.com:8443/a.tgz", false},
	} {
		from, _ := http.NewRequest(http.MethodGet, tt.from, nil)
		to, _ := http.NewRequest(http.MethodGet, tt.to, nil)
		to.Header.Set("Authorization", "Basic eDp5")
		if err := sameHostAuth(to, []*http.Request{from}); err != nil {
			t.Fatal(err)
		}
		if got := to.Header.Get("Authorization") != ""; got != tt.keep {
			t.Errorf("%s → %s: credentials kept %v, want %v", tt.from, tt.to, got, tt.keep)
		}
	}
}
