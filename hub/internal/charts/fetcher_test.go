package charts_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/chartstest"
)

// password is the secret the test servers require; no error may hold it.
const password = "hunter2-s3cr3t"

var basicAuth = chartstest.Auth{Username: "reader", Password: password}

// server is a Helm repository or an OCI registry as the tests use them.
type server struct {
	kind    string
	repoURL string
	publish func(t testing.TB, archive []byte)
	// publishAs lists an archive under another name and version.
	publishAs func(t testing.TB, archive []byte, name, version string)
	stop      func()
	f         *charts.Fetcher
	dir       string
}

// servers starts a Helm repository and an OCI registry that require auth, each with a
// fetcher holding credentials for it, cfg's bounds and its own cache directory.
func servers(t *testing.T, auth chartstest.Auth, cfg charts.Config) []*server {
	t.Helper()
	helm := chartstest.NewHelmRepo(t, auth)
	oci := chartstest.NewOCIRegistry(t, auth)
	return []*server{
		{kind: "helm", repoURL: helm.URL, publish: func(t testing.TB, a []byte) { helm.Publish(t, a) },
			publishAs: func(t testing.TB, a []byte, name, version string) {
				helm.PublishAs(t, a, chartstest.Published{Name: name, Version: version})
			},
			stop: helm.Stop, f: newFetcher(t, cfg, auth, helm.URL+"/"), dir: cfg.Dir},
		{kind: "oci", repoURL: oci.URL, publish: func(t testing.TB, a []byte) { oci.Push(t, a) }, publishAs: oci.PushAs,
			stop: oci.Stop, f: newFetcher(t, cfg, auth, oci.URL), dir: cfg.Dir},
	}
}

// newFetcher makes a fetcher whose credentials give auth to each URL prefix, trusting the
// test servers' certificate, with a cache under a new directory unless cfg names one.
func newFetcher(t testing.TB, cfg charts.Config, auth chartstest.Auth, urlPrefixes ...string) *charts.Fetcher {
	t.Helper()
	creds, err := source.LoadCredentials(chartstest.WriteCredentials(t, auth, urlPrefixes...))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = creds
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = chartstest.NewHelmRepo(t, chartstest.Auth{}).CertPool() // httptest's servers share one certificate
	}
	f, err := charts.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func pkg(t testing.TB, name, version string) []byte {
	return chartstest.PackageChart(t, chartstest.Chart{Name: name, Version: version})
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestFetchResolvesVersions(t *testing.T) {
	for _, auth := range []chartstest.Auth{basicAuth, {Token: password}} {
		for _, s := range servers(t, auth, charts.Config{}) {
			archives := map[string][]byte{}
			for _, v := range []string{"1.0.0", "1.2.0", "1.2.3", "1.9.0", "1.16.4", "2.0.0", "2.1.0-rc.1", "3.0.0+build.1"} {
				archives[v] = pkg(t, "app", v)
				s.publish(t, archives[v])
			}
			tests := []struct{ version, want string }{
				{"1.2.0", "1.2.0"},
				{"1.16.*", "1.16.4"},
				{">=1.0 <2", "1.16.4"},
				{"~1.2", "1.2.3"},
				{"^1.2", "1.16.4"},
				{"", "3.0.0+build.1"},
				{"3.0.0+build.1", "3.0.0+build.1"},
				{"<3", "2.0.0"}, // a prerelease only when asked for
				{">=2.1.0-rc.0 <2.2", "2.1.0-rc.1"},
			}
			for _, tt := range tests {
				name := s.kind + "/" + map[bool]string{true: "token", false: "basic"}[auth.Token != ""] + "/" + tt.version
				t.Run(name, func(t *testing.T) {
					a, err := s.f.Fetch(context.Background(), charts.Ref{RepoURL: s.repoURL, Chart: "app", Version: tt.version})
					if err != nil {
						t.Fatal(err)
					}
					if a.Version != tt.want || a.Digest != digest(archives[tt.want]) || string(a.Archive) != string(archives[tt.want]) {
						t.Errorf("got version %s digest %s, want %s %s", a.Version, a.Digest, tt.want, digest(archives[tt.want]))
					}
				})
			}
		}
	}
}

func TestFetchNotFound(t *testing.T) {
	for _, s := range servers(t, basicAuth, charts.Config{}) {
		s.publish(t, pkg(t, "app", "1.0.0"))
		for _, ref := range []charts.Ref{
			{RepoURL: s.repoURL, Chart: "app", Version: "2.0.0"},
			{RepoURL: s.repoURL, Chart: "app", Version: ">=2"},
			{RepoURL: s.repoURL, Chart: "nope", Version: "1.0.0"},
		} {
			t.Run(s.kind+"/"+ref.Chart+"@"+ref.Version, func(t *testing.T) {
				_, err := s.f.Fetch(context.Background(), ref)
				if !errors.Is(err, charts.ErrNotFound) || !strings.Contains(err.Error(), s.repoURL) || !strings.Contains(err.Error(), `chart "`+ref.Chart+`"`) {
					t.Errorf("error = %v, want ErrNotFound naming the repository and chart", err)
				}
			})
		}
	}
}

func TestFetchReresolvesWhenTheIndexIsOld(t *testing.T) {
	for _, s := range servers(t, basicAuth, charts.Config{IndexTTL: -1}) {
		t.Run(s.kind, func(t *testing.T) {
			s.publish(t, pkg(t, "app", "1.0.0"))
			ref := charts.Ref{RepoURL: s.repoURL, Chart: "app", Version: "1.x"}
			fetchVersion(t, s.f, ref, "1.0.0")
			s.publish(t, pkg(t, "app", "1.1.0"))
			fetchVersion(t, s.f, ref, "1.1.0")
		})
	}
}

func TestFetchReusesTheIndexWithinItsTTLAndTheArchiveByDigest(t *testing.T) {
	repo := chartstest.NewHelmRepo(t, basicAuth)
	f := newFetcher(t, charts.Config{IndexTTL: time.Hour}, basicAuth, repo.URL)
	path := repo.Publish(t, pkg(t, "app", "1.0.0"))
	ref := charts.Ref{RepoURL: repo.URL, Chart: "app", Version: "1.x"}
	fetchVersion(t, f, ref, "1.0.0")
	repo.Publish(t, pkg(t, "app", "1.1.0"))
	fetchVersion(t, f, ref, "1.0.0") // the index held is still young
	if n := repo.Requests("/index.yaml"); n != 1 {
		t.Errorf("index.yaml asked %d times, want 1", n)
	}

	f = newFetcher(t, charts.Config{IndexTTL: -1, Dir: t.TempDir()}, basicAuth, repo.URL)
	ref.Version = "1.0.0"
	for range 3 {
		fetchVersion(t, f, ref, "1.0.0")
	}
	if n := repo.Requests(path); n != 2 {
		t.Errorf("archive downloaded %d times (one by each fetcher), want 2", n)
	}
	if n := repo.Requests("/index.yaml"); n != 4 {
		t.Errorf("index.yaml asked %d times, want 4 (1 before, then each fetch: conditional)", n)
	}
}

func fetchVersion(t *testing.T, f *charts.Fetcher, ref charts.Ref, want string) *charts.Artifact {
	t.Helper()
	a, err := f.Fetch(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != want {
		t.Fatalf("%s resolved to %s, want %s", ref.Version, a.Version, want)
	}
	if a.Digest != digest(a.Archive) {
		t.Fatalf("digest %s is not the archive's %s", a.Digest, digest(a.Archive))
	}
	return a
}

func TestFetchWithWrongCredentials(t *testing.T) {
	for _, auth := range []chartstest.Auth{basicAuth, {Token: password}} {
		helm := chartstest.NewHelmRepo(t, auth)
		oci := chartstest.NewOCIRegistry(t, auth)
		helm.Publish(t, pkg(t, "app", "1.0.0"))
		oci.Push(t, pkg(t, "app", "1.0.0"))
		wrong := chartstest.Auth{Username: "reader", Password: "wrong-" + password}
		if auth.Token != "" {
			wrong = chartstest.Auth{Token: "wrong-" + password}
		}
		for _, repoURL := range []string{helm.URL, oci.URL} {
			for name, f := range map[string]*charts.Fetcher{
				"wrong": newFetcher(t, charts.Config{}, wrong, repoURL),
				"none":  newFetcher(t, charts.Config{}, wrong, "https://elsewhere.example.com/"),
			} {
				t.Run(repoURL+"/"+name, func(t *testing.T) {
					_, err := f.Fetch(context.Background(), charts.Ref{RepoURL: repoURL, Chart: "app", Version: "1.0.0"})
					if !errors.Is(err, charts.ErrUnauthorized) {
						t.Fatalf("error = %v, want ErrUnauthorized", err)
					}
					msg := err.Error()
					if !strings.Contains(msg, repoURL) || !strings.Contains(msg, `chart "app"`) || strings.Contains(msg, password) {
						t.Errorf("error %q: want the repository and chart, and no password", msg)
					}
				})
			}
		}
	}
}

func TestFetchWhileTheRepositoryIsDown(t *testing.T) {
	for _, s := range servers(t, basicAuth, charts.Config{IndexTTL: -1, Dir: t.TempDir()}) {
		t.Run(s.kind, func(t *testing.T) {
			for _, v := range []string{"1.0.0", "1.1.0"} {
				s.publish(t, pkg(t, "app", v))
			}
			exact := charts.Ref{RepoURL: s.repoURL, Chart: "app", Version: "1.1.0"}
			want := fetchVersion(t, s.f, exact, "1.1.0")
			if want.Stale != nil {
				t.Fatalf("a fresh artifact is Stale: %v", want.Stale)
			}
			s.stop()
			for _, ref := range []charts.Ref{
				{RepoURL: s.repoURL, Chart: "app", Version: "1.x"},   // a range needs the repository
				{RepoURL: s.repoURL, Chart: "app", Version: "1.0.0"}, // never fetched
			} {
				_, err := s.f.Fetch(context.Background(), ref)
				if !errors.Is(err, charts.ErrUnavailable) || !strings.Contains(err.Error(), s.repoURL) || !strings.Contains(err.Error(), `chart "app"`) {
					t.Errorf("%s: error = %v, want ErrUnavailable naming the repository and chart", ref.Version, err)
				}
			}
			// The exact version fetched before is served from the cache, also after a restart.
			restarted, err := charts.New(charts.Config{Dir: s.dir, IndexTTL: -1})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []*charts.Fetcher{s.f, restarted} {
				got, err := f.Fetch(context.Background(), exact)
				if err != nil {
					t.Fatalf("cached exact version: %v", err)
				}
				if got.Digest != want.Digest || got.Version != "1.1.0" || string(got.Archive) != string(want.Archive) {
					t.Errorf("served %s %s, want %s", got.Version, got.Digest, want.Digest)
				}
				if !errors.Is(got.Stale, charts.ErrUnavailable) || !strings.Contains(got.Stale.Error(), s.repoURL) {
					t.Errorf("Stale = %v, want the ErrUnavailable of the repository", got.Stale)
				}
			}
		})
	}
}

func TestFetchRefusesOversizeCharts(t *testing.T) {
	random := make([]byte, 64<<10)
	_, _ = rand.Read(random)
	compressed := chartstest.PackageChart(t, chartstest.Chart{Name: "big", Version: "1.0.0", Files: map[string][]byte{"files/random": random}})
	expanded := chartstest.PackageChart(t, chartstest.Chart{Name: "bomb", Version: "1.0.0", Files: map[string][]byte{"files/zeros": make([]byte, 1<<20)}})
	if len(expanded) > 32<<10 {
		t.Fatalf("the expanding chart is %d bytes compressed: the test needs it small", len(expanded))
	}
	for _, s := range servers(t, basicAuth, charts.Config{MaxChartBytes: 32 << 10, MaxExpandedBytes: 512 << 10}) {
		s.publish(t, compressed)
		s.publish(t, expanded)
		for _, tt := range []struct{ chart, want string }{
			{"big", "is over 32768 bytes"},
			{"bomb", "expands to over 524288 bytes"},
		} {
			t.Run(s.kind+"/"+tt.chart, func(t *testing.T) {
				_, err := s.f.Fetch(context.Background(), charts.Ref{RepoURL: s.repoURL, Chart: tt.chart, Version: "1.0.0"})
				if !errors.Is(err, charts.ErrTooLarge) || !strings.Contains(err.Error(), `chart "`+tt.chart+`"`) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error = %v, want ErrTooLarge naming the chart and %q", err, tt.want)
				}
			})
		}
	}
}

func TestFetchRefusesAnArchiveOfAnotherChart(t *testing.T) {
	for _, s := range servers(t, basicAuth, charts.Config{}) {
		s.publishAs(t, pkg(t, "other", "1.0.0"), "app", "1.0.0")
		s.publishAs(t, pkg(t, "app", "0.9.0"), "app", "1.1.0")
		for _, tt := range []struct{ version, want string }{
			{"1.0.0", `holds chart "other" version "1.0.0"`},
			{"1.1.0", `holds chart "app" version "0.9.0"`},
		} {
			t.Run(s.kind+"/"+tt.version, func(t *testing.T) {
				_, err := s.f.Fetch(context.Background(), charts.Ref{RepoURL: s.repoURL, Chart: "app", Version: tt.version})
				if !errors.Is(err, charts.ErrInvalidChart) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error = %v, want ErrInvalidChart: %s", err, tt.want)
				}
			})
		}
	}
}

func TestFetchRefusesADigestMismatch(t *testing.T) {
	repo := chartstest.NewHelmRepo(t, basicAuth)
	f := newFetcher(t, charts.Config{}, basicAuth, repo.URL)
	path := repo.Publish(t, pkg(t, "app", "1.0.0"))
	repo.Replace(path, pkg(t, "app", "1.0.0-tampered")) // another archive where the index points
	_, err := f.Fetch(context.Background(), charts.Ref{RepoURL: repo.URL, Chart: "app", Version: "1.0.0"})
	if !errors.Is(err, charts.ErrInvalidChart) || !strings.Contains(err.Error(), "the index publishes sha256:") || !strings.Contains(err.Error(), `chart "app"`) {
		t.Errorf("error = %v, want ErrInvalidChart for the digest", err)
	}
}

func TestFetchSendsCredentialsOnlyUnderTheirPrefix(t *testing.T) {
	repo := chartstest.NewHelmRepo(t, basicAuth)
	cdn := chartstest.NewHelmRepo(t, basicAuth) // another host:port, same password
	archive := pkg(t, "app", "1.0.0")
	cdnPath := cdn.Publish(t, archive)
	repo.PublishAs(t, archive, chartstest.Published{URL: cdn.URL + cdnPath})
	f := newFetcher(t, charts.Config{}, basicAuth, repo.URL)
	_, err := f.Fetch(context.Background(), charts.Ref{RepoURL: repo.URL, Chart: "app", Version: "1.0.0"})
	if !errors.Is(err, charts.ErrUnauthorized) || !strings.Contains(err.Error(), cdn.URL) {
		t.Fatalf("error = %v, want ErrUnauthorized from %s: the credentials are not for it", err, cdn.URL)
	}
	// An entry for the other host gives it credentials on purpose.
	f = newFetcher(t, charts.Config{}, basicAuth, repo.URL+"/", cdn.URL+"/")
	fetchVersion(t, f, charts.Ref{RepoURL: repo.URL, Chart: "app", Version: "1.0.0"}, "1.0.0")
}

func TestCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	repo := chartstest.NewHelmRepo(t, chartstest.Auth{})
	archives := map[string][]byte{}
	var largest int
	for _, name := range []string{"a", "b", "c"} {
		archives[name] = pkg(t, name, "1.0.0")
		repo.Publish(t, archives[name])
		largest = max(largest, len(archives[name]))
	}
	dir := t.TempDir()
	f := newFetcher(t, charts.Config{Dir: dir, MaxCacheBytes: int64(2*largest + largest/2), MaxChartBytes: int64(largest)}, basicAuth, repo.URL)
	for _, name := range []string{"a", "b", "a", "c"} { // b is the least recently used when c comes
		fetchVersion(t, f, charts.Ref{RepoURL: repo.URL, Chart: name, Version: "1.0.0"}, "1.0.0")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, e := range entries {
		held = append(held, "sha256:"+e.Name())
	}
	want := []string{digest(archives["a"]), digest(archives["c"])}
	if len(held) != 2 || !contains(held, want[0]) || !contains(held, want[1]) {
		t.Errorf("cache holds %v, want a's and c's %v", held, want)
	}
	// b again is a download; a is not.
	before := repo.Requests("/charts/a-1.0.0.tgz")
	fetchVersion(t, f, charts.Ref{RepoURL: repo.URL, Chart: "b", Version: "1.0.0"}, "1.0.0")
	fetchVersion(t, f, charts.Ref{RepoURL: repo.URL, Chart: "c", Version: "1.0.0"}, "1.0.0")
	if n := repo.Requests("/charts/b-1.0.0.tgz"); n != 2 {
		t.Errorf("b downloaded %d times, want 2", n)
	}
	if n := repo.Requests("/charts/c-1.0.0.tgz"); n != 1 {
		t.Errorf("c downloaded %d times, want 1", n)
	}
	if n := repo.Requests("/charts/a-1.0.0.tgz"); n != before {
		t.Errorf("a downloaded again")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestFetchRefusesBadReferences(t *testing.T) {
	f, err := charts.New(charts.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref        charts.Ref
		want, hide string
	}{
		{charts.Ref{RepoURL: "https://charts.example.com", Chart: ""}, "chart name is empty", ""},
		{charts.Ref{RepoURL: "https://charts.example.com", Chart: "../app"}, "not a name", ""},
		{charts.Ref{RepoURL: "http://charts.example.com", Chart: "app"}, `scheme "http"`, ""},
		{charts.Ref{RepoURL: "charts.example.com", Chart: "app"}, "not an https:// or oci:// URL", ""},
		{charts.Ref{RepoURL: "https://u:" + password + "@charts.example.com", Chart: "app"}, "credentials never go in a repository URL", password},
		{charts.Ref{RepoURL: "oci://registry.example.com/charts", Chart: "app", Version: "not a version"}, "neither a version nor a semver constraint", ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), tt.ref)
			if !errors.Is(err, charts.ErrInvalidRef) || !strings.Contains(err.Error(), tt.want) || (tt.hide != "" && strings.Contains(err.Error(), tt.hide)) {
				t.Errorf("error = %v, want ErrInvalidRef: %s", err, tt.want)
			}
		})
	}
}

func TestConcurrentFetchesAgree(t *testing.T) {
	for _, s := range servers(t, basicAuth, charts.Config{IndexTTL: -1}) {
		t.Run(s.kind, func(t *testing.T) {
			s.publish(t, pkg(t, "app", "1.0.0"))
			var g errgroup.Group
			digests := make([]string, 8)
			for i := range digests {
				g.Go(func() error {
					a, err := s.f.Fetch(context.Background(), charts.Ref{RepoURL: s.repoURL, Chart: "app", Version: "1.x"})
					if err == nil {
						digests[i] = a.Digest
					}
					return err
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			for _, d := range digests {
				if d != digests[0] {
					t.Fatalf("digests differ: %v", digests)
				}
			}
		})
	}
}

func TestFetchChecksACachedArchiveAgainstTheChartAskedFor(t *testing.T) {
	first := chartstest.NewHelmRepo(t, chartstest.Auth{})
	second := chartstest.NewHelmRepo(t, chartstest.Auth{})
	other := pkg(t, "other", "1.0.0")
	first.Publish(t, other)
	second.PublishAs(t, pkg(t, "app", "1.0.0"), chartstest.Published{Digest: strings.TrimPrefix(digest(other), "sha256:")})
	f := newFetcher(t, charts.Config{}, basicAuth, "https://elsewhere.example.com/")
	fetchVersion(t, f, charts.Ref{RepoURL: first.URL, Chart: "other", Version: "1.0.0"}, "1.0.0")
	_, err := f.Fetch(context.Background(), charts.Ref{RepoURL: second.URL, Chart: "app", Version: "1.0.0"})
	if !errors.Is(err, charts.ErrInvalidChart) || !strings.Contains(err.Error(), `holds chart "other"`) {
		t.Errorf("error = %v, want ErrInvalidChart: the cached archive of that digest is another chart", err)
	}
}
