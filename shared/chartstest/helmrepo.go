package chartstest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"
)

// HelmRepo is a Helm repository served over TLS by the test: GET /index.yaml (with an ETag,
// answering If-None-Match) and GET /charts/<name>-<version>.tgz, each requiring its Auth.
type HelmRepo struct {
	// URL is https://127.0.0.1:<port>.
	URL    string
	server *httptest.Server

	mu       sync.Mutex
	index    *repo.IndexFile
	files    map[string][]byte // by path
	requests map[string]int    // by path
}

// NewHelmRepo starts an empty repository that requires auth; it stops with the test.
func NewHelmRepo(t testing.TB, auth Auth) *HelmRepo {
	t.Helper()
	r := &HelmRepo{index: repo.NewIndexFile(), files: map[string][]byte{}, requests: map[string]int{}}
	challenge := `Basic realm="chartstest"`
	if auth.Token != "" {
		challenge = `Bearer realm="chartstest"`
	}
	r.server = httptest.NewTLSServer(auth.require(http.HandlerFunc(r.serve), challenge))
	t.Cleanup(r.server.Close)
	r.URL = r.server.URL
	return r
}

func (r *HelmRepo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests[req.URL.Path]++
	var data []byte
	var ok bool
	if req.URL.Path == "/index.yaml" {
		var err error
		if data, err = yaml.Marshal(r.index); err != nil {
			r.mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ok = true
	} else {
		data, ok = r.files[req.URL.Path]
	}
	r.mu.Unlock()
	if !ok {
		http.NotFound(w, req)
		return
	}
	sum := sha256.Sum256(data)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if req.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(data)
}

// Published says how Publish lists an archive in the index.
type Published struct {
	// URL is the archive's URL in the index: "" for charts/<name>-<version>.tgz (relative),
	// or an absolute URL (served elsewhere by the test).
	URL string
	// Digest is the digest the index publishes: "" for the archive's own, "-" for none.
	Digest string
	// Name and Version override the chart's own in the index ("" keeps them).
	Name, Version string
}

// Publish adds a packaged chart to the repository (index and archive) and returns its
// path on the server.
func (r *HelmRepo) Publish(t testing.TB, archive []byte) string {
	t.Helper()
	return r.PublishAs(t, archive, Published{})
}

// PublishAs adds a packaged chart to the repository as p says.
func (r *HelmRepo) PublishAs(t testing.TB, archive []byte, p Published) string {
	t.Helper()
	c, err := loader.LoadArchive(bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	md := *c.Metadata
	if p.Name != "" {
		md.Name = p.Name
	}
	if p.Version != "" {
		md.Version = p.Version
	}
	path := fmt.Sprintf("/charts/%s-%s.tgz", md.Name, md.Version)
	u := strings.TrimPrefix(path, "/")
	if p.URL != "" {
		u = p.URL
	}
	sum := sha256.Sum256(archive)
	digest := hex.EncodeToString(sum[:])
	switch p.Digest {
	case "":
	case "-":
		digest = ""
	default:
		digest = p.Digest
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = archive
	r.index.Entries[md.Name] = append(r.index.Entries[md.Name], &repo.ChartVersion{
		Metadata: &md, URLs: []string{u}, Digest: digest, Created: time.Now(),
	})
	r.index.SortEntries()
	return path
}

// Replace serves data at path instead of what was published there.
func (r *HelmRepo) Replace(path string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = data
}

// Requests counts the requests for path ("/index.yaml", "/charts/a-1.0.0.tgz") that
// passed the auth check.
func (r *HelmRepo) Requests(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[path]
}

// CertPool trusts the repository's TLS certificate.
func (r *HelmRepo) CertPool() *x509.CertPool { return certPool(r.server) }

// WriteCAFile writes the repository's TLS certificate as a PEM file (the hub's
// --chart-ca-file) and returns its path.
func (r *HelmRepo) WriteCAFile(t testing.TB) string { return writeCertPEM(t, r.server) }

// Stop stops the server: the repository is down, connections are refused.
func (r *HelmRepo) Stop() { r.server.Close() }
