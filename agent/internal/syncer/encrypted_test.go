package syncer

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func armored(t *testing.T, plaintext string, to ...age.Recipient) string {
	t.Helper()
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, to...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(plaintext)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func encryptedSecret(version string, data map[string]any) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flotilla.dev/" + version, "kind": "EncryptedSecret",
		"metadata": map[string]any{"name": "db", "namespace": "shop", "labels": map[string]any{"tier": "data"}},
		"spec":     map[string]any{"type": "Opaque", "encryptedData": data},
	}}
	return o
}

func TestDecrypted(t *testing.T) {
	mine, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	const canary = "canary-plaintext-9f2"
	toMe := armored(t, canary, mine.Recipient())
	toBoth := armored(t, canary, other.Recipient(), mine.Recipient())
	toOther := armored(t, canary, other.Recipient())
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}}}

	tests := []struct {
		name    string
		obj     *unstructured.Unstructured
		id      age.Identity
		wantErr string // substring; empty: success
	}{
		{name: "one recipient", obj: encryptedSecret("v1alpha1", map[string]any{"password": toMe}), id: mine},
		{name: "several recipients", obj: encryptedSecret("v1alpha1", map[string]any{"password": toBoth}), id: mine},
		{name: "another cluster's", obj: encryptedSecret("v1alpha1", map[string]any{"a": toMe, "password": toOther}), id: mine,
			wantErr: `decrypt EncryptedSecret.flotilla.dev/shop/db: key "password": not encrypted to this cluster's age recipient`},
		{name: "not armored", obj: encryptedSecret("v1alpha1", map[string]any{"password": canary}), id: mine,
			wantErr: `key "password": not ASCII-armored age ciphertext`},
		{name: "corrupt", obj: encryptedSecret("v1alpha1", map[string]any{"password": strings.Replace(toMe, "\n", "\nAAAA", 2)}), id: mine,
			wantErr: `key "password": malformed age ciphertext`},
		{name: "no identity", obj: encryptedSecret("v1alpha1", map[string]any{"password": toMe}), id: nil,
			wantErr: "this agent has no age identity"},
		{name: "unknown version", obj: encryptedSecret("v2", map[string]any{"password": toMe}), id: mine,
			wantErr: "version v2 is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Desired{App: "shop", Objects: []*unstructured.Unstructured{cm, tt.obj}}
			got := decrypted(d, tt.id)
			if d.Objects[1] != tt.obj || d.decryptErr != nil {
				t.Fatal("decrypted changed its input")
			}
			if tt.wantErr != "" {
				if got.decryptErr == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				msg := got.decryptErr.Error()
				if !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", msg, tt.wantErr)
				}
				if strings.Contains(msg, canary) || strings.Contains(msg, "AGE ENCRYPTED") || !apply.IsRejected(got.decryptErr) {
					t.Errorf("error %q leaks a value or is not a rejection", msg)
				}
				_, err := (&Controller{}).apply(t.Context(), got, nil, nil)
				if err != got.decryptErr {
					t.Errorf("Apply returned %v, want the decrypt error", err)
				}
				return
			}
			if got.decryptErr != nil {
				t.Fatal(got.decryptErr)
			}
			s := got.Objects[1]
			if s.GetAPIVersion() != "v1" || s.GetKind() != "Secret" || s.GetName() != "db" || s.GetNamespace() != "shop" ||
				s.GetLabels()["tier"] != "data" || s.Object["type"] != "Opaque" {
				t.Errorf("secret %v", s.Object)
			}
			v, _, _ := unstructured.NestedString(s.Object, "data", "password")
			if v != base64.StdEncoding.EncodeToString([]byte(canary)) {
				t.Errorf("data.password is not the decrypted value")
			}
			if got.Objects[0] != cm {
				t.Error("other objects are not passed through")
			}
			if msg := newScrubber(got).scrub("rejected " + canary); strings.Contains(msg, canary) {
				t.Errorf("the scrubber does not mask decrypted values: %q", msg)
			}
		})
	}
}
