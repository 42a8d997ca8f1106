package app

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// ChartOptions are the flags of the chart fetcher: Helm repositories and OCI registries.
type ChartOptions struct {
	CacheSize       byteSize
	MaxSize         byteSize
	MaxExpandedSize byteSize
	CAFile          string
}

func newChartOptions() ChartOptions {
	return ChartOptions{
		CacheSize:       charts.DefaultMaxCacheBytes,
		MaxSize:         charts.DefaultMaxChartBytes,
		MaxExpandedSize: charts.DefaultMaxExpandedBytes,
	}
}

// AddFlags binds the options to flags.
func (o *ChartOptions) AddFlags(fs *pflag.FlagSet) {
	fs.Var(&o.CacheSize, "chart-cache-size", "bytes of chart archives kept in DATA_DIR/charts (by digest, shared by every app, this replica's own); the least recently used go first")
	fs.Var(&o.MaxSize, "chart-max-size", "largest chart archive (.tgz, compressed) fetched from a Helm repository or OCI registry")
	fs.Var(&o.MaxExpandedSize, "chart-max-expanded-size", "largest a chart archive may expand to (all its files, uncompressed)")
	fs.StringVar(&o.CAFile, "chart-ca-file", o.CAFile, "PEM file of CA certificates trusted for Helm repositories and OCI registries, besides the system's")
}

func (o *ChartOptions) validate() error {
	switch {
	case o.MaxSize <= 0 || o.MaxExpandedSize <= 0:
		return fmt.Errorf("--chart-max-size and --chart-max-expanded-size: must be positive")
	case o.CacheSize < o.MaxSize:
		return fmt.Errorf("--chart-cache-size %s: smaller than --chart-max-size %s", o.CacheSize.String(), o.MaxSize.String())
	}
	return nil
}

// fetcher reads --chart-ca-file and makes the chart fetcher; it writes nothing (the cache
// directory is made on the first fetch).
func (o *ChartOptions) fetcher(dataDir string, creds *source.Credentials) (*charts.Fetcher, error) {
	var roots *x509.CertPool
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--chart-ca-file: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--chart-ca-file %s: no PEM certificate", o.CAFile)
		}
	}
	return charts.New(charts.Config{
		Dir:           filepath.Join(dataDir, "charts"),
		MaxCacheBytes: int64(o.CacheSize), MaxChartBytes: int64(o.MaxSize), MaxExpandedBytes: int64(o.MaxExpandedSize),
		Credentials: creds, RootCAs: roots,
	})
}

// byteSize is a flag of bytes, written as a Kubernetes quantity: 512Mi, 1Gi, 10000000.
type byteSize int64

var _ pflag.Value = (*byteSize)(nil)

func (b *byteSize) String() string {
	return resource.NewQuantity(int64(*b), resource.BinarySI).String()
}

func (b *byteSize) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a size such as 512Mi or 1Gi", s)
	}
	*b = byteSize(q.Value())
	return nil
}

func (b *byteSize) Type() string { return "bytes" }
