package rollout

import (
	"encoding/json"
	"maps"
)

// An edit of an Application that changes what its clusters receive (apps.Application.Spec)
// is rolled out like a new commit: a rollout carries a Target, a revision rendered with a
// definition of the app, and the clusters not yet in an active step keep the Target they had,
// the previous definition rendered at the previous revision. The record keeps the manifest
// documents of the definitions it refers to, so that a restarted hub or another replica
// renders the held clusters the same (Coordinator.Revision parses them back).

// EditWords is how operators are told that a rollout carries an edit of the Application.
const EditWords = "an Application edit"

// Target is what a cluster gets: a revision (a Git commit, or a chart's version), rendered
// with the definition of the app whose digest is Spec ("" : the app's current one).
type Target struct {
	Revision string
	Spec     string
}

// Defs are the definitions of an app a rollout refers to.
type Defs struct {
	// Spec is the digest of the definition the rollout carries; From that of the one the
	// clusters had (each Cluster.FromSpec overrides it). Empty in a record written before
	// edits were rolled out: the app's current definition.
	Spec string `json:"spec,omitempty"`
	From string `json:"from,omitempty"`
	// Docs are the manifest documents of those definitions, by digest.
	Docs map[string]json.RawMessage `json:"docs,omitempty"`
}

// Edit reports whether the rollout carries an edit of the Application.
func (r *Record) Edit() bool { return r.Defs.From != "" && r.Defs.From != r.Defs.Spec }

// idFor names the rollout: "r-" and the revision's first six characters, and for an edit of
// the Application the first four of its digest ("r-abc123-9f0e"), so that an edit at the same
// commit is a rollout of its own.
func (r *Record) idFor() string {
	id := ID(r.Revision)
	if r.Edit() {
		id += "-" + r.Defs.Spec[:min(4, len(r.Defs.Spec))]
	}
	return id
}

// keep is d's documents that rec refers to.
func (d Defs) keep(rec *Record) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	add := func(spec string) {
		if doc, ok := d.Docs[spec]; ok && spec != "" {
			out[spec] = doc
		}
	}
	add(rec.Defs.Spec)
	add(rec.Defs.From)
	for _, c := range rec.Clusters {
		add(c.FromSpec)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// setDoc records the document of the definition spec.
func (d *Defs) setDoc(spec string, doc []byte) {
	if spec == "" || len(doc) == 0 {
		return
	}
	if _, ok := d.Docs[spec]; ok {
		return
	}
	d.Docs = maps.Clone(d.Docs)
	if d.Docs == nil {
		d.Docs = map[string]json.RawMessage{}
	}
	d.Docs[spec] = json.RawMessage(doc)
}
