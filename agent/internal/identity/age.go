package identity

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
)

// KeyAgeIdentity is the key of the age Secret that holds the agent's age X25519 identity
// ("AGE-SECRET-KEY-1...").
const KeyAgeIdentity = "identity"

// LoadOrCreateAge returns the agent's age identity, kept in the Secret namespace/name, creating
// both on first start. EncryptedSecrets for the cluster are encrypted to its recipient; the
// identity never leaves the cluster (the hub learns only the recipient). The Secret is
// immutable: replacing the key means deleting the Secret, restarting the agent and
// re-encrypting every EncryptedSecret for the new recipient.
func LoadOrCreateAge(ctx context.Context, client *kube.Client, namespace, name string) (id *age.X25519Identity, created bool, err error) {
	secrets := client.Secrets(namespace)
	sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		fresh, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, false, fmt.Errorf("generate age identity: %w", err)
		}
		immutable := true
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: maps.Clone(managedBy)},
			Type:       corev1.SecretTypeOpaque,
			Immutable:  &immutable,
			Data:       map[string][]byte{KeyAgeIdentity: []byte(fresh.String())},
		}, metav1.CreateOptions{})
		if err == nil {
			return fresh, true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, false, fmt.Errorf("create age secret %s/%s: %w", namespace, name, err)
		}
		sec, err = secrets.Get(ctx, name, metav1.GetOptions{}) // another agent replica made it first
	}
	if err != nil {
		return nil, false, fmt.Errorf("get age secret %s/%s: %w", namespace, name, err)
	}
	raw := strings.TrimSpace(string(sec.Data[KeyAgeIdentity]))
	if raw == "" {
		return nil, false, fmt.Errorf("age secret %s/%s: missing %s", namespace, name, KeyAgeIdentity)
	}
	id, err = age.ParseX25519Identity(raw)
	if err != nil {
		// Not wrapped: the parser's message could quote the key.
		return nil, false, fmt.Errorf("age secret %s/%s: %s is not an age X25519 identity", namespace, name, KeyAgeIdentity)
	}
	return id, false, nil
}
