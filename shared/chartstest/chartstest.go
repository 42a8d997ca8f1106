// Package chartstest serves Helm charts to tests over real TLS: a Helm repository
// (index.yaml and archives) and an OCI registry (go-containerregistry's in-memory registry
// that Helm's own client pushes to), each requiring credentials, and packages charts with
// the Helm SDK. The charts package's tests and the e2e tests share it.
package chartstest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// Chart is a chart to package.
type Chart struct {
	Name, Version string
	// Files are added to the chart by path ("templates/cm.yaml", "values.yaml",
	// "files/blob"); without any the chart has one ConfigMap template.
	Files map[string][]byte
}

// PackageChart packages c with the Helm SDK, as `helm package` does, and returns the
// archive (.tgz).
func PackageChart(t testing.TB, c Chart) []byte {
	t.Helper()
	ch := &chart.Chart{Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: c.Name, Version: c.Version, Type: "application"}}
	files := c.Files
	if len(files) == 0 {
		files = map[string][]byte{"templates/configmap.yaml": fmt.Appendf(nil,
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-%s\ndata:\n  version: %q\n", c.Name, c.Version)}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := &common.File{Name: p, Data: files[p]}
		switch {
		case p == "values.yaml":
			ch.Values = map[string]any{}
			ch.Raw = append(ch.Raw, f)
		case strings.HasPrefix(p, "templates/"):
			ch.Templates = append(ch.Templates, f)
		default:
			ch.Files = append(ch.Files, f)
		}
	}
	dir := t.TempDir()
	path, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatalf("package chart %s %s: %v", c.Name, c.Version, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Auth is what a test server requires: basic auth (Username and Password) or a bearer
// Token. The zero Auth requires nothing.
type Auth struct {
	Username, Password string
	Token              string
}

// check reports whether r carries the credentials a requires.
func (a Auth) check(r *http.Request) bool {
	switch {
	case a.Token != "":
		return r.Header.Get("Authorization") == "Bearer "+a.Token
	case a.Username != "":
		u, p, ok := r.BasicAuth()
		return ok && u == a.Username && p == a.Password
	default:
		return true
	}
}

// require wraps h so that requests without the credentials get 401 with challenge.
func (a Auth) require(h http.Handler, challenge string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.check(r) {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// certPool trusts the certificate of srv (httptest's TLS servers share one).
func certPool(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// WriteCredentials writes a --repo-credentials file with an entry giving auth to each URL
// prefix, its secret in a file beside it, and returns the file's path.
func WriteCredentials(t testing.TB, auth Auth, urlPrefixes ...string) string {
	t.Helper()
	entries := make([]Credential, len(urlPrefixes))
	for i, prefix := range urlPrefixes {
		entries[i] = Credential{URLPrefix: prefix, Auth: auth}
	}
	return WriteCredentialsFile(t, entries...)
}

// Credential is one entry of a --repo-credentials file: Auth for URLPrefix.
type Credential struct {
	URLPrefix string
	Auth      Auth
}

// WriteCredentialsFile writes a --repo-credentials file with the entries, each secret in a
// file beside it, and returns the file's path.
func WriteCredentialsFile(t testing.TB, entries ...Credential) string {
	t.Helper()
	dir := t.TempDir()
	var b bytes.Buffer
	b.WriteString("repositories:\n")
	for i, e := range entries {
		secretFile := fmt.Sprintf("secret-%d", i)
		secret := e.Auth.Password
		fmt.Fprintf(&b, "- urlPrefix: %s\n", e.URLPrefix)
		if e.Auth.Token != "" {
			secret = e.Auth.Token
			fmt.Fprintf(&b, "  bearerTokenFile: %s\n", secretFile)
		} else {
			fmt.Fprintf(&b, "  username: %s\n  passwordFile: %s\n", e.Auth.Username, secretFile)
		}
		if err := os.WriteFile(filepath.Join(dir, secretFile), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "credentials.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCertPEM writes the certificate of srv as PEM into a file of the test and returns its
// path, for a process (the hub's --chart-ca-file) that must trust the server.
func writeCertPEM(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
