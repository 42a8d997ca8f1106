package charts

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/loader"
)

// maxChecked bounds the archives remembered as checked.
const maxChecked = 10000

// checkArchive checks that data is a chart archive within the bounds, holding the chart
// ref.Chart at version: the expanded size is counted before Helm's loader reads it. An
// archive already found to hold that chart and version is not loaded again.
func (f *Fetcher) checkArchive(ref Ref, version string, data []byte) error {
	key := digestOf(data) + " " + ref.Chart + " " + version
	f.mu.Lock()
	_, done := f.checked[key]
	f.mu.Unlock()
	if done {
		return nil
	}
	if err := f.loadArchive(ref, version, data); err != nil {
		return err
	}
	f.mu.Lock()
	if len(f.checked) >= maxChecked {
		clear(f.checked)
	}
	f.checked[key] = struct{}{}
	f.mu.Unlock()
	return nil
}

// loadArchive is checkArchive without the memory of what was checked.
func (f *Fetcher) loadArchive(ref Ref, version string, data []byte) error {
	if int64(len(data)) > f.cfg.MaxChartBytes {
		return &Error{Ref: ref, Kind: ErrTooLarge, Detail: fmt.Sprintf("archive of version %s is over %d bytes", version, f.cfg.MaxChartBytes)}
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("archive of version %s is not gzip: %v", version, err)}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, f.cfg.MaxExpandedBytes+1))
	if err != nil {
		return &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("archive of version %s: %v", version, err)}
	}
	if n > f.cfg.MaxExpandedBytes {
		return &Error{Ref: ref, Kind: ErrTooLarge, Detail: fmt.Sprintf("archive of version %s expands to over %d bytes", version, f.cfg.MaxExpandedBytes)}
	}
	c, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("archive of version %s: %v", version, err)}
	}
	acc, err := chart.NewDefaultAccessor(c)
	if err != nil {
		return &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("archive of version %s: %v", version, err)}
	}
	gotVersion, _ := acc.MetadataAsMap()["Version"].(string) // the Go field names of the chart's metadata
	if acc.Name() != ref.Chart || !sameVersion(gotVersion, version) {
		return &Error{Ref: ref, Kind: ErrInvalidChart,
			Detail: fmt.Sprintf("the archive of version %s holds chart %q version %q", version, acc.Name(), gotVersion)}
	}
	return nil
}

// sameVersion compares versions as semver when both are, else as strings.
func sameVersion(a, b string) bool {
	va, errA := semver.NewVersion(a)
	vb, errB := semver.NewVersion(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return va.Equal(vb) && va.Metadata() == vb.Metadata()
}
