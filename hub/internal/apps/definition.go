package apps

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// An Application's definition, as a progressive rollout keeps it (hub/internal/rollout): an
// edit of what the app's clusters receive is rolled out like a new commit, and the clusters
// not yet in an active step are rendered with the definition they had. So each Flotilla
// Application carries the digest of the part of its spec that changes what its clusters
// receive, and its manifest document, from which ParseDefinition rebuilds it (after a hub
// restart, or on another replica).

// specDigest is the digest of what d's clusters receive: the sources (path, repository,
// targetRevision, kustomize and helm settings, values), the destination namespace, the sync,
// health and access policies and ignoreDifferences. Not the fields only the hub reads:
// which clusters it targets (destination.clusters, clusterSelector: a cluster that gains or
// loses the app is no edit of what the others receive), spec.rollout itself, dependsOn (the
// hub orders applies by it), spec.secrets (a hub check) and the metadata.
func specDigest(d *flotillaDoc) (string, error) {
	s := d.Spec
	s.Destination.Clusters, s.Destination.ClusterSelector = nil, nil
	s.Rollout, s.DependsOn, s.Secrets = nil, nil, ""
	data, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// ParseDefinition rebuilds the Application whose manifest document (Application.Doc) is doc,
// read from file.
func ParseDefinition(file string, doc []byte) (*Application, error) {
	app, errs := parseDoc(file, 1, doc)
	switch {
	case len(errs) > 0:
		return nil, errs[0]
	case app == nil:
		return nil, fmt.Errorf("%s: not an Application", file)
	}
	return app, nil
}
