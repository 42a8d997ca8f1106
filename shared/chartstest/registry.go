package chartstest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/registry"
)

// OCIRegistry is an OCI registry served over TLS by the test: go-containerregistry's
// in-memory registry behind a check of its Auth (challenging as a real registry does, Basic
// or Bearer). Charts are pushed by Helm's own registry client through a second TLS server
// on the same storage that requires nothing, so a registry that requires a token still
// takes pushes.
type OCIRegistry struct {
	// URL is oci://127.0.0.1:<port>/charts, the repoURL of the charts pushed.
	URL string
	// Host is 127.0.0.1:<port>.
	Host   string
	public *httptest.Server
	admin  *httptest.Server
	client *registry.Client
}

// NewOCIRegistry starts an empty registry that requires auth; it stops with the test.
func NewOCIRegistry(t testing.TB, auth Auth) *OCIRegistry {
	t.Helper()
	handler := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r := &OCIRegistry{}
	r.admin = httptest.NewTLSServer(handler)
	t.Cleanup(r.admin.Close)
	r.public = httptest.NewUnstartedServer(nil)
	r.Host = r.public.Listener.Addr().String()
	challenge := `Basic realm="chartstest"`
	if auth.Token != "" {
		// A client without the token goes to the realm for one, and is refused there too.
		challenge = `Bearer realm="https://` + r.Host + `/token",service="chartstest"`
	}
	r.public.Config.Handler = auth.require(handler, challenge)
	r.public.StartTLS()
	t.Cleanup(r.public.Close)
	r.URL = "oci://" + r.Host + "/charts"
	client, err := registry.NewClient(
		registry.ClientOptHTTPClient(&http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: certPool(r.admin), MinVersion: tls.VersionTLS12},
		}}),
		registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")),
	)
	if err != nil {
		t.Fatalf("helm registry client: %v", err)
	}
	r.client = client
	return r
}

// Push pushes a packaged chart as <URL>/<name>:<version> (Helm's "_" for "+").
func (r *OCIRegistry) Push(t testing.TB, archive []byte) {
	t.Helper()
	c, err := loader.LoadArchive(bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	r.PushAs(t, archive, c.Name(), c.Metadata.Version)
}

// PushAs pushes a packaged chart as <URL>/<name>:<version>, whatever the chart says.
func (r *OCIRegistry) PushAs(t testing.TB, archive []byte, name, version string) {
	t.Helper()
	adminHost := strings.TrimPrefix(r.admin.URL, "https://")
	ref := adminHost + "/charts/" + name + ":" + strings.ReplaceAll(version, "+", "_")
	if _, err := r.client.Push(archive, ref, registry.PushOptStrictMode(false)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// CertPool trusts the registry's TLS certificate.
func (r *OCIRegistry) CertPool() *x509.CertPool { return certPool(r.public) }

// WriteCAFile writes the registry's TLS certificate as a PEM file (the hub's
// --chart-ca-file) and returns its path.
func (r *OCIRegistry) WriteCAFile(t testing.TB) string { return writeCertPEM(t, r.public) }

// Stop stops the registry: it is down, connections are refused.
func (r *OCIRegistry) Stop() { r.public.Close() }
