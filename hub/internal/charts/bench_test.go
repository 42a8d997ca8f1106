package charts_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/shared/chartstest"
)

// benchChart is a chart of 20 templates of about 2 KiB each that compress as YAML does
// (the archive is tens of KiB), about what a platform chart holds.
func benchChart(b *testing.B, name, version string) []byte {
	files := map[string][]byte{}
	for i := range 20 {
		var notes strings.Builder
		for j := range 24 {
			sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d/%d", name, version, i, j))
			fmt.Fprintf(&notes, "    # %x\n", sum[:24])
		}
		files[fmt.Sprintf("templates/cm-%02d.yaml", i)] = fmt.Appendf(nil,
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-%d\n  labels: {app: %s}\ndata:\n  replicas: {{ .Values.replicas | default 1 | quote }}\n%s",
			i, name, notes.String())
	}
	return chartstest.PackageChart(b, chartstest.Chart{Name: name, Version: version, Files: files})
}

// BenchmarkFetch: a chart fetched cold (a new cache: index, download, checks) and warm
// (the index held, the archive read from the cache by digest), and warm with the index
// asked again at every fetch as at every poll (a conditional GET answered 304).
func BenchmarkFetch(b *testing.B) {
	helm := chartstest.NewHelmRepo(b, basicAuth)
	oci := chartstest.NewOCIRegistry(b, basicAuth)
	archive := benchChart(b, "app", "1.0.0")
	helm.Publish(b, archive)
	oci.Push(b, archive)
	for _, repo := range []struct{ kind, url string }{{"helm", helm.URL}, {"oci", oci.URL}} {
		prefix := repo.url
		if repo.kind == "helm" {
			prefix += "/"
		}
		ref := charts.Ref{RepoURL: repo.url, Chart: "app", Version: "1.x"}
		for _, mode := range []struct {
			name string
			ttl  time.Duration
			cold bool
		}{{"cold", time.Hour, true}, {"warm", time.Hour, false}, {"warm-reresolve", -1, false}} {
			b.Run(repo.kind+"/"+mode.name, func(b *testing.B) {
				f := newFetcher(b, charts.Config{IndexTTL: mode.ttl, RootCAs: helm.CertPool()}, basicAuth, prefix)
				for b.Loop() {
					if mode.cold {
						b.StopTimer()
						f = newFetcher(b, charts.Config{IndexTTL: mode.ttl, RootCAs: helm.CertPool()}, basicAuth, prefix)
						b.StartTimer()
					}
					if _, err := f.Fetch(context.Background(), ref); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(archive)), "archive-bytes")
			})
		}
	}
}

// BenchmarkMemory50Charts: the heap a fetcher holds after fetching 50 charts of one Helm
// repository (3 versions each in its index) and 50 of an OCI registry: the indexes and tag
// lists it keeps; archives stay on disk. archives-bytes is what a caller holding all 100
// artifacts adds.
func BenchmarkMemory50Charts(b *testing.B) {
	helm := chartstest.NewHelmRepo(b, basicAuth)
	oci := chartstest.NewOCIRegistry(b, basicAuth)
	var refs []charts.Ref
	for i := range 50 {
		name := fmt.Sprintf("chart-%02d", i)
		for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
			archive := benchChart(b, name, v)
			helm.Publish(b, archive)
			if v == "1.2.0" {
				oci.Push(b, archive)
			}
		}
		refs = append(refs, charts.Ref{RepoURL: helm.URL, Chart: name, Version: "1.x"}, charts.Ref{RepoURL: oci.URL, Chart: name, Version: "1.x"})
	}
	for b.Loop() {
		b.StopTimer()
		f := newFetcher(b, charts.Config{RootCAs: helm.CertPool()}, basicAuth, helm.URL+"/", oci.URL)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		var held int
		for _, ref := range refs {
			a, err := f.Fetch(context.Background(), ref)
			if err != nil {
				b.Fatal(err)
			}
			held += len(a.Archive)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(f)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)), "fetcher-heap-bytes")
		b.ReportMetric(float64(held), "archives-bytes")
		b.StartTimer()
	}
}
