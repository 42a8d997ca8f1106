package syncer

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// EncryptedSecret is Flotilla's format for Secrets kept in Git (invariant 7):
//
//	apiVersion: flotilla.dev/v1alpha1
//	kind: EncryptedSecret
//	metadata:            # becomes the Secret's metadata (name, namespace, labels, annotations)
//	  name: db
//	  namespace: shop
//	spec:
//	  type: Opaque       # optional, the Secret's type
//	  encryptedData:     # key -> ASCII-armored age ciphertext of the value, to one recipient per
//	    password: |      # target cluster or several (`flotilla clusters -o json`: ageRecipient)
//	      -----BEGIN AGE ENCRYPTED FILE-----
//	      ...
//	      -----END AGE ENCRYPTED FILE-----
//
// The hub passes it through as it is. The agent turns it into a core/v1 Secret with its own age
// identity before anything else reads the revision (policy, dry-run, apply, drift, health,
// scrubbing), so the app's inventory holds the Secret. The bundle kept in the agent's state
// Secret stays as received, with ciphertext only. SOPS files are not supported.
const (
	encryptedGroup   = "flotilla.dev"
	encryptedVersion = "v1alpha1"
	encryptedKind    = "EncryptedSecret"
)

// maxSecretValue bounds one decrypted value (a Secret holds at most 1 MiB in all).
const maxSecretValue = 1 << 20

func isEncryptedSecret(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == encryptedGroup && gvk.Kind == encryptedKind
}

// decrypted returns d with each EncryptedSecret replaced by the Secret it holds, decrypted with
// id; d itself is not changed. When something cannot be decrypted the copy keeps d's objects
// and carries the error, which fails the revision when it is applied (Apply): an *apply.ObjectError
// (Op "decrypt", Rejected) naming the object and the key, never holding ciphertext, plaintext or
// the age library's message.
func decrypted(d *Desired, id age.Identity) *Desired {
	if d == nil || !slices.ContainsFunc(d.Objects, isEncryptedSecret) {
		return d
	}
	out := *d
	out.Objects = make([]*unstructured.Unstructured, len(d.Objects))
	for i, o := range d.Objects {
		if !isEncryptedSecret(o) {
			out.Objects[i] = o
			continue
		}
		s, err := decryptSecret(o, id)
		if err != nil {
			out.Objects, out.decryptErr = d.Objects, err
			return &out
		}
		out.Objects[i] = s
	}
	return &out
}

// decryptSecret turns one EncryptedSecret into its Secret.
func decryptSecret(o *unstructured.Unstructured, id age.Identity) (*unstructured.Unstructured, error) {
	ref := apply.RefOf(o)
	fail := func(key, reason string) error {
		err := errors.New(reason)
		if key != "" {
			err = fmt.Errorf("key %q: %s", key, reason)
		}
		return &apply.ObjectError{Object: ref, Op: "decrypt", Rejected: true, Err: err}
	}
	if v := o.GroupVersionKind().Version; v != encryptedVersion {
		return nil, fail("", fmt.Sprintf("version %s is not supported (want %s/%s)", v, encryptedGroup, encryptedVersion))
	}
	if id == nil {
		return nil, fail("", "this agent has no age identity")
	}
	spec, _ := o.Object["spec"].(map[string]any)
	enc, ok := spec["encryptedData"].(map[string]any)
	if !ok {
		return nil, fail("", "spec.encryptedData must be a map of keys to age ciphertext")
	}
	data := make(map[string]any, len(enc))
	for _, k := range slices.Sorted(maps.Keys(enc)) {
		ct, ok := enc[k].(string)
		if !ok {
			return nil, fail(k, "value is not a string")
		}
		plain, reason := decryptValue(ct, id)
		if reason != "" {
			return nil, fail(k, reason)
		}
		data[k] = base64.StdEncoding.EncodeToString(plain)
	}
	s := &unstructured.Unstructured{Object: map[string]any{"data": data}}
	s.SetAPIVersion("v1")
	s.SetKind("Secret")
	s.SetName(o.GetName())
	s.SetNamespace(o.GetNamespace())
	s.SetLabels(o.GetLabels())
	s.SetAnnotations(o.GetAnnotations())
	if t, ok := spec["type"].(string); ok && t != "" {
		s.Object["type"] = t
	}
	return s, nil
}

// decryptValue decrypts one armored age value. On failure it returns a reason fit for status
// and logs: a category, never the library's message (which might quote input).
func decryptValue(armored string, id age.Identity) ([]byte, string) {
	if !strings.Contains(armored, armor.Header) {
		return nil, "not ASCII-armored age ciphertext"
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(strings.TrimSpace(armored))), id)
	if err != nil {
		if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
			return nil, "not encrypted to this cluster's age recipient"
		}
		return nil, "malformed age ciphertext"
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxSecretValue+1))
	switch {
	case err != nil:
		return nil, "corrupt age ciphertext"
	case len(plain) > maxSecretValue:
		return nil, "value larger than 1 MiB"
	}
	return plain, ""
}
