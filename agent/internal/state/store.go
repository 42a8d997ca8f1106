package state

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Store reads and writes the state Secrets of one namespace. It is safe for concurrent use;
// concurrent Saves of the same app must be serialised by the caller.
type Store struct {
	client    kubernetes.Interface
	namespace string

	mu    sync.Mutex
	saved map[string]written // by app: what the cluster holds, as far as this Store knows
}

// written is what a state Secret was last known to hold.
type written struct {
	resourceVersion string
	sum             [sha256.Size]byte // of the JSON document
}

// NewStore returns a Store keeping state Secrets in namespace.
func NewStore(client kubernetes.Interface, namespace string) *Store {
	return &Store{client: client, namespace: namespace, saved: map[string]written{}}
}

// Load reads every app's state. A Secret that cannot be decoded is left out and named in the
// returned error, next to the states that could be read: the caller decides what to do.
func (s *Store) Load(ctx context.Context) (map[string]*AppState, error) {
	list, err := s.client.CoreV1().Secrets(s.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: LabelState + "=" + LabelStateApp,
	})
	if err != nil {
		return nil, fmt.Errorf("list state secrets in %s: %w", s.namespace, err)
	}
	states := make(map[string]*AppState, len(list.Items))
	var errs []error
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range list.Items {
		sec := &list.Items[i]
		st, sum, err := decodeSecret(sec)
		if err != nil {
			errs = append(errs, fmt.Errorf("state secret %s/%s: %w", s.namespace, sec.Name, err))
			continue
		}
		if sec.Name != SecretName(st.App) {
			errs = append(errs, fmt.Errorf("state secret %s/%s holds app %q, expected in %s", s.namespace, sec.Name, st.App, SecretName(st.App)))
			continue
		}
		states[st.App] = st
		s.saved[st.App] = written{resourceVersion: sec.ResourceVersion, sum: sum}
	}
	return states, errors.Join(errs...)
}

// Save writes st, creating the namespace and the Secret when missing. It writes nothing when
// the cluster already holds the same state.
func (s *Store) Save(ctx context.Context, st *AppState) error {
	if st.App == "" {
		return errors.New("save state: no app name")
	}
	doc, err := encode(st)
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.App, err)
	}
	sum := sha256.Sum256(doc)
	s.mu.Lock()
	prev, known := s.saved[st.App]
	s.mu.Unlock()
	if known && prev.sum == sum {
		return nil
	}
	secret := s.secret(st.App, compress(doc))
	secrets := s.client.CoreV1().Secrets(s.namespace)

	if known {
		secret.ResourceVersion = prev.resourceVersion
		out, err := secrets.Update(ctx, secret, metav1.UpdateOptions{})
		if err == nil {
			s.remember(st.App, out.ResourceVersion, sum)
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("save state of %s: %w", st.App, err)
		}
		// Someone else wrote or deleted it: read what is there and start over.
		secret.ResourceVersion = ""
	}

	cur, err := secrets.Get(ctx, secret.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		out, err := s.create(ctx, secret)
		if err != nil {
			return fmt.Errorf("save state of %s: %w", st.App, err)
		}
		s.remember(st.App, out.ResourceVersion, sum)
		return nil
	case err != nil:
		return fmt.Errorf("save state of %s: %w", st.App, err)
	}
	if _, curSum, err := decodeSecret(cur); err == nil && curSum == sum {
		s.remember(st.App, cur.ResourceVersion, sum)
		return nil
	}
	secret.ResourceVersion = cur.ResourceVersion
	out, err := secrets.Update(ctx, secret, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.App, err)
	}
	s.remember(st.App, out.ResourceVersion, sum)
	return nil
}

// Delete removes app's state. Deleting state that does not exist is not an error.
func (s *Store) Delete(ctx context.Context, app string) error {
	err := s.client.CoreV1().Secrets(s.namespace).Delete(ctx, SecretName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete state of %s: %w", app, err)
	}
	s.mu.Lock()
	delete(s.saved, app)
	s.mu.Unlock()
	return nil
}

func (s *Store) remember(app, resourceVersion string, sum [sha256.Size]byte) {
	s.mu.Lock()
	s.saved[app] = written{resourceVersion: resourceVersion, sum: sum}
	s.mu.Unlock()
}

func (s *Store) secret(app string, data []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName(app),
			Namespace: s.namespace,
			Labels:    map[string]string{LabelState: LabelStateApp},
		},
		Type: SecretType,
		Data: map[string][]byte{DataKey: data},
	}
}

// create creates secret, and its namespace first when that is missing.
func (s *Store) create(ctx context.Context, secret *corev1.Secret) (*corev1.Secret, error) {
	out, err := s.client.CoreV1().Secrets(s.namespace).Create(ctx, secret, metav1.CreateOptions{})
	if err == nil || !apierrors.IsNotFound(err) {
		return out, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}
	if _, err := s.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", s.namespace, err)
	}
	return s.client.CoreV1().Secrets(s.namespace).Create(ctx, secret, metav1.CreateOptions{})
}

func decodeSecret(sec *corev1.Secret) (*AppState, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	data, ok := sec.Data[DataKey]
	if !ok {
		return nil, sum, fmt.Errorf("no %s key", DataKey)
	}
	doc, err := decompress(data)
	if err != nil {
		return nil, sum, fmt.Errorf("decompress: %w", err)
	}
	st, err := decode(doc)
	if err != nil {
		return nil, sum, fmt.Errorf("decode: %w", err)
	}
	// Sum what this version would write for st, so a Save of an equal state is a no-op even
	// if the stored bytes were produced by another version.
	norm, err := encode(st)
	if err != nil {
		return nil, sum, fmt.Errorf("decode: %w", err)
	}
	return st, sha256.Sum256(norm), nil
}
