package charts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// cachedIndex is a repository's index.yaml, cut down to what resolving and downloading
// need (names, versions, URLs, digests): a large public index is tens of megabytes of
// descriptions and maintainers otherwise.
type cachedIndex struct {
	index   *repo.IndexFile
	etag    string
	fetched time.Time
}

// fetchHTTP fetches ref from a Helm repository: index.yaml, the newest version matching,
// the archive (from the cache when it holds the published digest).
func (f *Fetcher) fetchHTTP(ctx context.Context, ref Ref) (*Artifact, error) {
	base := strings.TrimSuffix(ref.RepoURL, "/") + "/"
	auth, err := f.auth(ref, base)
	if err != nil {
		return nil, err
	}
	idx, err := f.index(ctx, ref, base, auth)
	if err != nil {
		return nil, err
	}
	cv, err := idx.Get(ref.Chart, ref.Version)
	if err != nil {
		return nil, &Error{Ref: ref, Kind: ErrNotFound, Detail: "no version matches in the repository's index.yaml"}
	}
	if len(cv.URLs) == 0 {
		return nil, &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("version %s has no URL in the repository's index.yaml", cv.Version)}
	}
	archiveURL, err := resolveURL(base, cv.URLs[0])
	if err != nil {
		return nil, &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("version %s: URL %q: %v", cv.Version, cv.URLs[0], err)}
	}
	want := ""
	if cv.Digest != "" {
		want = "sha256:" + strings.ToLower(strings.TrimPrefix(cv.Digest, "sha256:"))
		if data := f.cache.get(want); data != nil {
			// Checked again: another repository may publish this digest for another chart.
			if err := f.checkArchive(ref, cv.Version, data); err != nil {
				return nil, err
			}
			return &Artifact{Ref: ref, Version: cv.Version, Digest: want, Archive: data}, nil
		}
	}
	// Credentials go only to URLs under the entry's prefix (Argo CD's passCredentials off):
	// an archive elsewhere gets those of its own entry, if any.
	send := auth
	if auth == nil || !auth.Covers(archiveURL) {
		if send, err = f.auth(ref, archiveURL); err != nil {
			return nil, err
		}
	}
	v, err := f.shared(ctx, "archive\x00"+archiveURL, func(ctx context.Context) (any, error) {
		return f.get(ctx, archiveURL, send, f.cfg.MaxChartBytes)
	})
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, &Error{Ref: ref, Kind: ErrTooLarge, Detail: fmt.Sprintf("archive of version %s is over %d bytes", cv.Version, f.cfg.MaxChartBytes)}
		}
		return nil, failure(ref, err, "download version "+cv.Version, send.Secrets())
	}
	data := v.([]byte)
	digest := digestOf(data)
	if want != "" && digest != want {
		return nil, &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("archive of version %s has digest %s, the index publishes %s", cv.Version, digest, want)}
	}
	if err := f.checkArchive(ref, cv.Version, data); err != nil {
		return nil, err
	}
	_ = f.cache.put(digest, data) // without the cache (a full disk) the next fetch downloads again
	return &Artifact{Ref: ref, Version: cv.Version, Digest: digest, Archive: data}, nil
}

// index returns the repository's index, asking for it again (conditionally, with the ETag
// it had) once the one held is older than the TTL.
func (f *Fetcher) index(ctx context.Context, ref Ref, base string, auth *source.RepoAuth) (*repo.IndexFile, error) {
	f.mu.Lock()
	held := f.indexes[base]
	f.mu.Unlock()
	if held != nil && f.cfg.IndexTTL > 0 && time.Since(held.fetched) < f.cfg.IndexTTL {
		return held.index, nil
	}
	v, err := f.shared(ctx, "index\x00"+base, func(ctx context.Context) (any, error) {
		return f.loadIndex(ctx, base, auth, held)
	})
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, &Error{Ref: ref, Kind: ErrTooLarge, Detail: fmt.Sprintf("index.yaml is over %d bytes", f.cfg.MaxIndexBytes)}
		}
		return nil, failure(ref, err, "index.yaml", auth.Secrets())
	}
	ci := v.(*cachedIndex)
	f.mu.Lock()
	f.indexes[base] = ci
	f.mu.Unlock()
	return ci.index, nil
}

func (f *Fetcher) loadIndex(ctx context.Context, base string, auth *source.RepoAuth, held *cachedIndex) (*cachedIndex, error) {
	indexURL := base + "index.yaml"
	header := http.Header{}
	if held != nil && held.etag != "" {
		header.Set("If-None-Match", held.etag)
	}
	resp, err := f.do(ctx, indexURL, auth, header)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && held != nil {
		return &cachedIndex{index: held.index, etag: held.etag, fetched: time.Now()}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode, url: indexURL}
	}
	data, err := readBounded(resp.Body, f.cfg.MaxIndexBytes)
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(data)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidChart, Detail: fmt.Sprintf("index.yaml: %v", err)}
	}
	return &cachedIndex{index: idx, etag: resp.Header.Get("ETag"), fetched: time.Now()}, nil
}

// parseIndex reads an index.yaml (or its JSON form) and keeps of each entry what resolving
// and downloading need, sorted newest first as Helm's IndexFile.Get expects. Entries Helm
// would refuse are left out, as Helm does.
func parseIndex(data []byte) (*repo.IndexFile, error) {
	var raw repo.IndexFile
	var err error
	if json.Valid(data) {
		err = json.Unmarshal(data, &raw)
	} else {
		err = yaml.Unmarshal(data, &raw)
	}
	if err != nil {
		return nil, err
	}
	if raw.APIVersion == "" {
		return nil, repo.ErrNoAPIVersion
	}
	idx := &repo.IndexFile{APIVersion: raw.APIVersion, Entries: make(map[string]repo.ChartVersions, len(raw.Entries))}
	for name, versions := range raw.Entries {
		kept := make(repo.ChartVersions, 0, len(versions))
		for _, cv := range versions {
			if cv == nil || cv.Metadata == nil || cv.Removed || len(cv.URLs) == 0 {
				continue
			}
			if cv.APIVersion == "" {
				cv.APIVersion = chartv2.APIVersionV1
			}
			if cv.Validate() != nil || cv.Name != name {
				continue
			}
			kept = append(kept, &repo.ChartVersion{
				Metadata: &chartv2.Metadata{Name: cv.Name, Version: cv.Version, APIVersion: cv.APIVersion},
				URLs:     cv.URLs[:1:1],
				Digest:   cv.Digest,
			})
		}
		idx.Entries[name] = kept
	}
	idx.SortEntries()
	return idx, nil
}

// resolveURL resolves an archive URL of the index against the repository's base URL; only
// https URLs are fetched.
func resolveURL(base, raw string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u, err := b.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("not an https URL")
	}
	if u.User != nil {
		return "", fmt.Errorf("the URL holds credentials")
	}
	return u.String(), nil
}

// get downloads rawURL, at most limit bytes.
func (f *Fetcher) get(ctx context.Context, rawURL string, auth *source.RepoAuth, limit int64) ([]byte, error) {
	resp, err := f.do(ctx, rawURL, auth, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode, url: rawURL}
	}
	return readBounded(resp.Body, limit)
}

// do sends a GET with the credentials, if any. Go's client drops the Authorization header
// on a redirect to another host.
func (f *Fetcher) do(ctx context.Context, rawURL string, auth *source.RepoAuth, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	switch {
	case auth == nil:
	case auth.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+auth.BearerToken)
	default:
		req.SetBasicAuth(auth.Username, auth.Password)
	}
	return f.client.Do(req)
}

// readBounded reads r to its end, refusing more than limit bytes with ErrTooLarge.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, ErrTooLarge
	}
	return data, nil
}
