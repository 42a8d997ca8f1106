// Package state keeps the agent's durable per-app state in the cluster it manages: per app, one
// Secret in the agent's namespace holding gzip-compressed JSON, or several when the compressed
// state is larger than one Secret may hold (see Store). With it an agent that restarts knows
// what it applied (bundle, inventory) and what was last healthy, without the hub.
package state

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// Labels, keys and names of the state Secrets.
const (
	// LabelState marks a state Secret; its value is LabelStateApp.
	LabelState    = "flotilla.dev/state"
	LabelStateApp = "app"
	// SecretPrefix starts every state Secret's name.
	SecretPrefix = "flotilla-app-"
	// SecretType is the type of the state Secrets.
	SecretType = "flotilla.dev/app-state"
	// DataKey is the Secret data key holding the gzip-compressed JSON (in a state cut into
	// parts, this Secret's slice of it).
	DataKey = "state.json.gz"
	// LabelAppState is on every Secret of an app's state, head and parts; its value is
	// AppLabelValue(app).
	LabelAppState = "flotilla.dev/app-state"
	// LabelPart marks a part Secret (not the head); its value is the part's index, from 1.
	LabelPart = "flotilla.dev/state-part"
	// AnnotationParts, on the head, is the number of parts of the state, the head included.
	AnnotationParts = "flotilla.dev/state-parts"
	// AnnotationSHA256, on the head, is the hex sha256 of the whole compressed state: the
	// DataKey values of the head and its parts, in order.
	AnnotationSHA256 = "flotilla.dev/state-sha256"
	// AnnotationPartSet, on the head of a state cut into parts, names the set its parts belong
	// to: the first 16 hex digits of AnnotationSHA256. Each state's parts have names of their
	// own, so a Save never overwrites the parts the current head names.
	AnnotationPartSet = "flotilla.dev/state-part-set"
	// MaxPartSize bounds the compressed bytes one Secret holds. The API server refuses a
	// Secret whose data exceeds 1 MiB; this leaves room under 900 KiB.
	MaxPartSize = 896 << 10
	// maxDecoded bounds a decompressed state document.
	maxDecoded = 64 << 20
	// maxParts bounds the parts a head may name: enough for maxDecoded of incompressible data.
	maxParts = (maxDecoded+maxDecoded/16)/MaxPartSize + 1
)

// AppState is what the agent keeps for one app.
type AppState struct {
	App string
	// Generation, Revision and Digest are those of the desired state last applied (acked).
	Generation uint64
	Revision   string
	Digest     string
	// Bundle is the canonical bundle data (shared/bundle) last applied.
	Bundle    []byte
	Namespace string
	Policy    Policy
	// Inventory lists every object the app owns in the cluster.
	Inventory []ObjectRef
	// Waves are the sync waves inventory objects were last applied in, by ObjectRef key
	// (group/kind/namespace/name), wave 0 left out: a prune deletes the highest wave first.
	Waves map[string]int
	// HealthyRevision, HealthyDigest and HealthyBundle are the last applied revision that
	// became Healthy: the rollback target.
	HealthyRevision string
	HealthyDigest   string
	HealthyBundle   []byte
	AppliedAt       time.Time
	// RolledBack is set when the agent rolled back from a revision that did not become
	// healthy, or tried to: that revision is not applied again until the hub sends another
	// revision or digest, or an operator asks for it.
	RolledBack *RolledBack
	// Hooks records the hook phases that ran to success for one revision: they do not run
	// again for it (a re-sync, an agent restart).
	Hooks *Hooks
}

// Hooks are the hook phases done for the revision of Digest.
type Hooks struct {
	Digest string
	Done   []string // PreSync, Sync, PostSync
}

// RolledBack records an automatic rollback from one revision.
type RolledBack struct {
	// Revision and Digest are those of the revision rolled back from.
	Revision string
	Digest   string
	Reason   string    // why it was unhealthy, for people
	At       time.Time `json:",omitzero"`
	// Failed: re-applying the last healthy revision failed; the agent stopped there, keeping
	// what the cluster holds. Error says why.
	Failed bool   `json:",omitempty"`
	Error  string `json:",omitempty"`
}

// Policy is the sync, health and access policy the app was last applied with.
type Policy struct {
	Automated       bool `json:",omitempty"`
	Prune           bool `json:",omitempty"`
	SelfHeal        bool `json:",omitempty"`
	AllowEmpty      bool `json:",omitempty"`
	CreateNamespace bool `json:",omitempty"`
	PruneLast       bool `json:",omitempty"`
	// PreserveResourcesOnDeletion: removing the app releases its objects instead of deleting.
	PreserveResourcesOnDeletion bool          `json:",omitempty"`
	Force                       bool          `json:",omitempty"` // syncOptions Force=true
	RetryLimit                  int           `json:",omitempty"`
	RetryDuration               time.Duration `json:",omitempty"`
	RetryFactor                 float64       `json:",omitempty"`
	RetryMaxDuration            time.Duration `json:",omitempty"`
	ProgressDeadline            time.Duration `json:",omitempty"`
	AutoRollback                bool          `json:",omitempty"`
	HealthRules                 []HealthRule  `json:",omitempty"`
	// Namespaces, ClusterResources and Deny are the app's spec.policy (syncer.AccessPolicy), so
	// that a rollback is checked against it too.
	Namespaces       []string    `json:",omitempty"`
	ClusterResources []GroupKind `json:",omitempty"`
	Deny             []GroupKind `json:",omitempty"`
	// The app's ignoreDifferences rules and the sync options about applying, so that a restarted
	// agent ignores and applies as the hub said.
	IgnoreDifferences        []ignore.Rule `json:",omitempty"`
	RespectIgnoreDifferences bool          `json:",omitempty"`
	PrunePropagation         string        `json:",omitempty"`
	SkipValidation           bool          `json:",omitempty"`
}

// GroupKind names a kind in a policy; group and kind may be globs.
type GroupKind struct {
	Group string `json:",omitempty"`
	Kind  string
}

// HealthRule is a custom health rule of the policy (agent/internal/health.Rule).
type HealthRule struct {
	Group      string `json:",omitempty"`
	Kind       string
	Expression string
}

// ObjectRef names one object of an inventory.
type ObjectRef struct {
	Group     string `json:",omitempty"`
	Version   string
	Kind      string
	Namespace string `json:",omitempty"`
	Name      string
}

// document is the stored form. Bundles are embedded as JSON (they are JSON arrays) rather than
// base64, so they compress well; a healthy bundle equal to the applied one is stored once.
type document struct {
	App             string
	Generation      uint64
	Revision        string
	Digest          string
	Bundle          json.RawMessage `json:",omitempty"`
	Namespace       string          `json:",omitempty"`
	Policy          Policy
	Inventory       []ObjectRef
	Waves           map[string]int  `json:",omitempty"`
	HealthyRevision string          `json:",omitempty"`
	HealthyDigest   string          `json:",omitempty"`
	HealthyBundle   json.RawMessage `json:",omitempty"`
	HealthySame     bool            `json:",omitempty"`
	AppliedAt       time.Time
	RolledBack      *RolledBack `json:",omitempty"`
	Hooks           *Hooks      `json:",omitempty"`
}

// encode returns the JSON form of s (deterministic: equal states give equal bytes).
func encode(s *AppState) ([]byte, error) {
	if err := checkJSON("bundle", s.Bundle); err != nil {
		return nil, err
	}
	doc := document{
		App: s.App, Generation: s.Generation, Revision: s.Revision, Digest: s.Digest,
		Bundle: raw(s.Bundle), Namespace: s.Namespace, Policy: s.Policy, Inventory: s.Inventory, Waves: s.Waves,
		HealthyRevision: s.HealthyRevision, HealthyDigest: s.HealthyDigest, AppliedAt: s.AppliedAt.UTC(),
		RolledBack: s.RolledBack, Hooks: s.Hooks,
	}
	if s.HealthyDigest != "" && s.HealthyDigest == s.Digest && bytes.Equal(s.HealthyBundle, s.Bundle) {
		doc.HealthySame = true
	} else {
		if err := checkJSON("healthy bundle", s.HealthyBundle); err != nil {
			return nil, err
		}
		doc.HealthyBundle = raw(s.HealthyBundle)
	}
	// No HTML escaping: the embedded bundles must come back byte for byte (their digest).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decode(data []byte) (*AppState, error) {
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.App == "" {
		return nil, fmt.Errorf("no app name")
	}
	s := &AppState{
		App: doc.App, Generation: doc.Generation, Revision: doc.Revision, Digest: doc.Digest,
		Bundle: bytesOf(doc.Bundle), Namespace: doc.Namespace, Policy: doc.Policy, Inventory: doc.Inventory, Waves: doc.Waves,
		HealthyRevision: doc.HealthyRevision, HealthyDigest: doc.HealthyDigest,
		HealthyBundle: bytesOf(doc.HealthyBundle), AppliedAt: doc.AppliedAt, RolledBack: doc.RolledBack, Hooks: doc.Hooks,
	}
	if doc.HealthySame {
		s.HealthyBundle = s.Bundle
	}
	return s, nil
}

func checkJSON(what string, b []byte) error {
	if len(b) > 0 && !json.Valid(b) {
		return fmt.Errorf("%s is not JSON", what)
	}
	return nil
}

func raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func bytesOf(r json.RawMessage) []byte {
	if len(r) == 0 || string(r) == "null" {
		return nil
	}
	// Compact: the stored form is what encoding/json wrote, but be exact about whitespace.
	var buf bytes.Buffer
	if err := json.Compact(&buf, r); err != nil {
		return []byte(r)
	}
	return buf.Bytes()
}

func compress(data []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(data) // writes to a bytes.Buffer cannot fail
	_ = zw.Close()
	return buf.Bytes()
}

func decompress(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecoded {
		return nil, fmt.Errorf("larger than %d bytes", maxDecoded)
	}
	return out, nil
}

// SecretName returns the name of app's state Secret (its head): "flotilla-app-<app>" when app
// is a DNS-1123 label (every app the hub sends is), else a sanitised form with a short hash of
// the app name. Head names never hold a dot, so they never collide with PartName.
func SecretName(app string) string {
	if len(validation.IsDNS1123Label(app)) == 0 {
		return SecretPrefix + app
	}
	return SecretPrefix + sanitized(app, 180)
}

// PartName returns the name of part i (from 1) of the part set set of app's state: the head's
// name, a dot, the set, a dot and i. The dot keeps it apart from every head:
// "flotilla-app-shop-1" would be the head of app "shop-1".
func PartName(app, set string, i int) string { return partName(SecretName(app), set, i) }

// partName is head.set.i, or head.i for the empty set (states written before part sets).
func partName(head, set string, i int) string {
	if set == "" {
		return head + "." + strconv.Itoa(i)
	}
	return head + "." + set + "." + strconv.Itoa(i)
}

// partSet returns the part set name of a state whose compressed form has the hex sha256 sum.
func partSet(sum string) string { return sum[:16] }

// AppLabelValue returns the value of LabelAppState for app: the app name when it is a valid
// label value, else a sanitised form with a short hash of the app name.
func AppLabelValue(app string) string {
	if len(validation.IsValidLabelValue(app)) == 0 {
		return app
	}
	v := sanitized(app, 40)
	if v[0] == '-' {
		v = "x" + v // a label value starts with a letter or digit
	}
	return v
}

// sanitized is app in lower case with every other character than a-z, 0-9 and '-' replaced,
// trimmed of dashes and cut to at most max characters, then a dash and the first 10 hex digits
// of sha256(app).
func sanitized(app string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(app) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	clean := strings.Trim(b.String(), "-")
	if len(clean) > max {
		clean = clean[:max]
	}
	sum := sha256.Sum256([]byte(app))
	return clean + "-" + hex.EncodeToString(sum[:])[:10]
}
