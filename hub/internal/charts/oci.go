package charts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v4/pkg/registry"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// The bounds of what an OCI registry sends besides the chart.
const (
	maxManifestBytes = 4 << 20
	maxTags          = 100000
	tagPages         = 1000
)

// cachedTags is an OCI repository's tags that are versions, newest first, as versions
// (Helm's "+" for the "_" of the tag).
type cachedTags struct {
	versions []string
	fetched  time.Time
}

// fetchOCI fetches ref from an OCI registry: oci://host/path and chart name the repository
// host/path/chart, a version its tag (with "_" for "+", Helm's rule), a range the newest
// tag that is a version matching it; the manifest's chart layer is the archive.
//
// The client is oras-go's registry client, the library under Helm's pkg/registry, used
// directly rather than through Helm's Client or go-containerregistry's remote: Helm's
// Client runs without the caller's context, reads credentials from the docker and helm
// config files of $HOME, and reads a layer whole without a bound; go-containerregistry
// speaks plain HTTP to registries on loopback and private (RFC 1918) addresses, which would
// send credentials in the clear. oras-go takes the fetch's context, always speaks TLS,
// sends credentials only to the registry's host, bounds manifests, and lets the layer's
// size be checked before its bytes are read. Helm's registry package still gives the
// media types and the tag matching.
func (f *Fetcher) fetchOCI(ctx context.Context, ref Ref) (*Artifact, error) {
	path := strings.TrimSuffix(strings.TrimPrefix(ref.RepoURL, "oci://"), "/") + "/" + ref.Chart
	auth, err := f.auth(ref, "oci://"+path)
	if err != nil {
		return nil, err
	}
	repo, err := remote.NewRepository(path)
	if err != nil {
		return nil, &Error{Ref: ref, Kind: ErrInvalidRef, Detail: err.Error()}
	}
	repo.Client = &orasauth.Client{Client: f.client, Credential: registryCredential(repo.Reference.Registry, auth), Cache: f.ociAuth}
	repo.MaxMetadataBytes = maxManifestBytes
	repo.TagListMaxPages = tagPages
	secrets := auth.Secrets()

	version := ref.Version
	if !isExact(ref.Version) {
		if version, err = f.resolveTag(ctx, ref, repo, secrets); err != nil {
			return nil, err
		}
	}
	layer, err := chartLayer(ctx, repo, strings.ReplaceAll(version, "+", "_"))
	if err != nil {
		return nil, failure(ref, err, "manifest of version "+version, secrets)
	}
	if layer.Size > f.cfg.MaxChartBytes {
		return nil, &Error{Ref: ref, Kind: ErrTooLarge, Detail: fmt.Sprintf("archive of version %s is over %d bytes (%d)", version, f.cfg.MaxChartBytes, layer.Size)}
	}
	digest := layer.Digest.String()
	if data := f.cache.get(digest); data != nil {
		// Checked again: another repository may hold this layer under another name.
		if err := f.checkArchive(ref, version, data); err != nil {
			return nil, err
		}
		return &Artifact{Ref: ref, Version: version, Digest: digest, Archive: data}, nil
	}
	v, err := f.shared(ctx, "blob\x00"+path+"@"+digest, func(ctx context.Context) (any, error) {
		rc, err := repo.Blobs().Fetch(ctx, layer)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return readBounded(rc, layer.Size)
	})
	if err != nil {
		return nil, failure(ref, err, "chart layer of version "+version, secrets)
	}
	data := v.([]byte)
	if got := digestOf(data); got != digest {
		return nil, &Error{Ref: ref, Kind: ErrInvalidChart, Detail: fmt.Sprintf("chart layer of version %s has digest %s, its manifest says %s", version, got, digest)}
	}
	if err := f.checkArchive(ref, version, data); err != nil {
		return nil, err
	}
	_ = f.cache.put(digest, data) // without the cache (a full disk) the next fetch downloads again
	return &Artifact{Ref: ref, Version: version, Digest: digest, Archive: data}, nil
}

// registryCredential gives auth to the registry's host and to no other.
func registryCredential(host string, auth *source.RepoAuth) orasauth.CredentialFunc {
	if auth == nil {
		return orasauth.StaticCredential(host, orasauth.EmptyCredential)
	}
	return orasauth.StaticCredential(host, orasauth.Credential{
		Username: auth.Username, Password: auth.Password, AccessToken: auth.BearerToken,
	})
}

// resolveTag returns the newest version among the repository's tags that matches
// ref.Version (empty: the newest stable).
func (f *Fetcher) resolveTag(ctx context.Context, ref Ref, repo *remote.Repository, secrets []string) (string, error) {
	key := repo.Reference.Registry + "/" + repo.Reference.Repository
	f.mu.Lock()
	held := f.tags[key]
	f.mu.Unlock()
	if held == nil || f.cfg.IndexTTL < 0 || time.Since(held.fetched) >= f.cfg.IndexTTL {
		v, err := f.shared(ctx, "tags\x00"+key, func(ctx context.Context) (any, error) {
			return listVersions(ctx, repo)
		})
		if err != nil {
			return "", failure(ref, err, "tag list", secrets)
		}
		held = &cachedTags{versions: v.([]string), fetched: time.Now()}
		f.mu.Lock()
		f.tags[key] = held
		f.mu.Unlock()
	}
	version, err := registry.GetTagMatchingVersionOrConstraint(held.versions, ref.Version)
	if err != nil {
		return "", &Error{Ref: ref, Kind: ErrNotFound, Detail: "no tag of the repository matches"}
	}
	return version, nil
}

// listVersions lists the tags that are semver versions, as versions, newest first.
func listVersions(ctx context.Context, repo *remote.Repository) ([]string, error) {
	type tagged struct {
		v   *semver.Version
		raw string
	}
	var all []tagged
	err := repo.Tags(ctx, "", func(tags []string) error {
		for _, t := range tags {
			v := strings.ReplaceAll(t, "_", "+")
			if sv, err := semver.NewVersion(v); err == nil {
				all = append(all, tagged{sv, v})
			}
		}
		if len(all) > maxTags {
			return fmt.Errorf("over %d tags", maxTags)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(all, func(a, b tagged) int { return b.v.Compare(a.v) })
	versions := make([]string, len(all))
	for i, t := range all {
		versions[i] = t.raw
	}
	return versions, nil
}

// chartLayer fetches the manifest of tag and returns its chart layer.
func chartLayer(ctx context.Context, repo *remote.Repository, tag string) (ocispec.Descriptor, error) {
	desc, rc, err := repo.FetchReference(ctx, tag)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, min(desc.Size, maxManifestBytes)+1))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return ocispec.Descriptor{}, &Error{Kind: ErrInvalidChart, Detail: fmt.Sprintf("manifest of tag %s: %v", tag, err)}
	}
	for _, l := range m.Layers {
		if l.MediaType == registry.ChartLayerMediaType || l.MediaType == registry.LegacyChartLayerMediaType {
			return l, nil
		}
	}
	return ocispec.Descriptor{}, &Error{Kind: ErrInvalidChart, Detail: fmt.Sprintf("manifest of tag %s has no layer of media type %s: not a Helm chart", tag, registry.ChartLayerMediaType)}
}

// ociKind classifies an oras-go error; ok is false when it is not one.
func ociKind(err error) (error, bool) {
	var resp *errcode.ErrorResponse
	switch {
	case errors.As(err, &resp):
		return kindOfStatus(resp.StatusCode), true
	case errors.Is(err, errdef.ErrNotFound):
		return ErrNotFound, true
	case errors.Is(err, orasauth.ErrBasicCredentialNotFound):
		return ErrUnauthorized, true
	}
	return nil, false
}
