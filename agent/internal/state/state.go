// Package state keeps the agent's durable per-app state in the cluster it manages: one Secret per
// app in the agent's namespace, holding gzip-compressed JSON. With it an agent that restarts
// knows what it applied (bundle, inventory) and what was last healthy, without the hub.
package state

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
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
	// DataKey is the Secret data key holding the gzip-compressed JSON.
	DataKey = "state.json.gz"
	// maxDecoded bounds a decompressed state document.
	maxDecoded = 64 << 20
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
	// HealthyRevision, HealthyDigest and HealthyBundle are the last applied revision that
	// became Healthy: the rollback target.
	HealthyRevision string
	HealthyDigest   string
	HealthyBundle   []byte
	AppliedAt       time.Time
}

// Policy is the sync and health policy the app was last applied with.
type Policy struct {
	Automated        bool          `json:",omitempty"`
	Prune            bool          `json:",omitempty"`
	SelfHeal         bool          `json:",omitempty"`
	AllowEmpty       bool          `json:",omitempty"`
	CreateNamespace  bool          `json:",omitempty"`
	PruneLast        bool          `json:",omitempty"`
	RetryLimit       int           `json:",omitempty"`
	RetryDuration    time.Duration `json:",omitempty"`
	RetryFactor      float64       `json:",omitempty"`
	RetryMaxDuration time.Duration `json:",omitempty"`
	ProgressDeadline time.Duration `json:",omitempty"`
	AutoRollback     bool          `json:",omitempty"`
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
	HealthyRevision string          `json:",omitempty"`
	HealthyDigest   string          `json:",omitempty"`
	HealthyBundle   json.RawMessage `json:",omitempty"`
	HealthySame     bool            `json:",omitempty"`
	AppliedAt       time.Time
}

// encode returns the JSON form of s (deterministic: equal states give equal bytes).
func encode(s *AppState) ([]byte, error) {
	if err := checkJSON("bundle", s.Bundle); err != nil {
		return nil, err
	}
	doc := document{
		App: s.App, Generation: s.Generation, Revision: s.Revision, Digest: s.Digest,
		Bundle: raw(s.Bundle), Namespace: s.Namespace, Policy: s.Policy, Inventory: s.Inventory,
		HealthyRevision: s.HealthyRevision, HealthyDigest: s.HealthyDigest, AppliedAt: s.AppliedAt.UTC(),
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
		Bundle: bytesOf(doc.Bundle), Namespace: doc.Namespace, Policy: doc.Policy, Inventory: doc.Inventory,
		HealthyRevision: doc.HealthyRevision, HealthyDigest: doc.HealthyDigest,
		HealthyBundle: bytesOf(doc.HealthyBundle), AppliedAt: doc.AppliedAt,
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

// SecretName returns the name of app's state Secret: "flotilla-app-<app>" when that is a valid
// name, else a sanitised form with a short hash of the app name.
func SecretName(app string) string {
	name := SecretPrefix + app
	if len(validation.IsDNS1123Subdomain(name)) == 0 && len(name) <= 200 {
		return name
	}
	var b strings.Builder
	for _, r := range strings.ToLower(app) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	clean := strings.Trim(b.String(), "-")
	if len(clean) > 180 {
		clean = clean[:180]
	}
	sum := sha256.Sum256([]byte(app))
	return SecretPrefix + clean + "-" + hex.EncodeToString(sum[:])[:10]
}
