package identity

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
)

// Keys of the identity Secret, besides tls.crt and tls.key of type kubernetes.io/tls.
const (
	KeyCA      = "ca.crt"
	KeyCluster = "cluster"
)

// managedBy labels the Secrets the agent owns.
var managedBy = map[string]string{"app.kubernetes.io/managed-by": "flotilla-agent"}

// Store keeps the identity in a Secret of type kubernetes.io/tls (tls.crt, tls.key, plus
// ca.crt and cluster) in the agent's namespace.
type Store struct {
	client    *kube.Client
	namespace string
	name      string
}

// NewStore returns a Store for the Secret namespace/secretName.
func NewStore(client *kube.Client, namespace, secretName string) *Store {
	return &Store{client: client, namespace: namespace, name: secretName}
}

// Load reads the identity. ok is false, with no error, when the Secret does not exist; a
// Secret that exists but lacks a key is an error.
func (s *Store) Load(ctx context.Context) (id *Identity, ok bool, err error) {
	sec, err := s.client.Secrets(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get identity secret %s/%s: %w", s.namespace, s.name, err)
	}
	var missing []string
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, KeyCA, KeyCluster} {
		if len(sec.Data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, false, fmt.Errorf("identity secret %s/%s: missing %s", s.namespace, s.name, strings.Join(missing, ", "))
	}
	return &Identity{
		KeyPEM:  sec.Data[corev1.TLSPrivateKeyKey],
		CertPEM: sec.Data[corev1.TLSCertKey],
		CAPEM:   sec.Data[KeyCA],
		Cluster: string(sec.Data[KeyCluster]),
	}, true, nil
}

// Save writes the identity, creating the Secret or updating it in place (other keys and
// metadata of an existing Secret are kept). The identity must be complete and its certificate
// and key must match.
func (s *Store) Save(ctx context.Context, id *Identity) error {
	if err := validate(id); err != nil {
		return fmt.Errorf("save identity to secret %s/%s: %w", s.namespace, s.name, err)
	}
	data := map[string][]byte{
		corev1.TLSCertKey:       id.CertPEM,
		corev1.TLSPrivateKeyKey: id.KeyPEM,
		KeyCA:                   id.CAPEM,
		KeyCluster:              []byte(id.Cluster),
	}
	secrets := s.client.Secrets(s.namespace)
	create := func() error {
		_, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace, Labels: maps.Clone(managedBy)},
			Type:       corev1.SecretTypeTLS,
			Data:       data,
		}, metav1.CreateOptions{})
		return err
	}
	err := create()
	if apierrors.IsAlreadyExists(err) {
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := secrets.Get(ctx, s.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return create()
			}
			if err != nil {
				return err
			}
			if cur.Type != corev1.SecretTypeTLS {
				// The type of a Secret is immutable; do not delete what someone else made.
				return fmt.Errorf("existing secret has type %s, want %s", cur.Type, corev1.SecretTypeTLS)
			}
			if cur.Data == nil {
				cur.Data = map[string][]byte{}
			}
			maps.Copy(cur.Data, data)
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			maps.Copy(cur.Labels, managedBy)
			_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("save identity to secret %s/%s: %w", s.namespace, s.name, err)
	}
	return nil
}

// CheckWritable tells, without writing anything, whether Save could create the identity
// Secret: a dry-run create that the API server authorises, admits and validates like the real
// one (RBAC, quota, admission webhooks, an existing Secret of that name). The agent runs it
// before it spends its join token.
func (s *Store) CheckWritable(ctx context.Context) error {
	_, err := s.client.Secrets(s.namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace, Labels: maps.Clone(managedBy)},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: []byte("-"), corev1.TLSPrivateKeyKey: []byte("-"), KeyCA: []byte("-"), KeyCluster: []byte("-")},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return fmt.Errorf("identity secret %s/%s cannot be created: %w", s.namespace, s.name, err)
	}
	return nil
}

// SaveRetrying saves the identity like Save, retrying with jittered exponential backoff b
// while it fails (failed is told each failure). It returns the last error when b's steps are
// spent or ctx ends. An incomplete identity is refused at once.
func (s *Store) SaveRetrying(ctx context.Context, id *Identity, b wait.Backoff, failed func(error)) error {
	if err := validate(id); err != nil {
		return fmt.Errorf("save identity to secret %s/%s: %w", s.namespace, s.name, err)
	}
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, b, func(ctx context.Context) (bool, error) {
		if last = s.Save(ctx, id); last != nil {
			failed(last)
			return false, nil
		}
		return true, nil
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// validate checks that the identity is complete and usable before it is persisted.
func validate(id *Identity) error {
	if id == nil {
		return errors.New("no identity")
	}
	if id.Cluster == "" {
		return errors.New("identity has no cluster name")
	}
	if _, err := id.TLSConfig(""); err != nil {
		return err
	}
	return nil
}

// EnsureNamespace creates namespace if it does not exist.
func EnsureNamespace(ctx context.Context, client *kube.Client, namespace string) error {
	_, err := client.Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	_, err = client.Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: maps.Clone(managedBy)},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return nil
}
