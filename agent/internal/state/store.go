package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
)

// Store reads and writes the state Secrets of one namespace. It is safe for concurrent use;
// concurrent Saves of the same app must be serialised by the caller.
//
// An app's state is its JSON document, gzip-compressed and cut into parts of at most
// MaxPartSize bytes. The head Secret, SecretName(app), holds the first part, the number of
// parts, the sha256 of the whole and the name of its part set (derived from that sha256); the
// Secrets partName(head, set, 1), partName(head, set, 2), ... hold the rest. Parts are never
// overwritten: Save writes a new state's parts under its new set's names, then switches the
// head (one atomic update), then deletes the parts no head names. So a reader, whose List of
// the namespace is one consistent snapshot, always finds either the complete old state or the
// complete new one, wherever a write was cut short; Load accepts a state only when the parts
// its head names add up to the head's checksum. Parts that no head names (left by a write cut
// short before or after its head) are ignored, and the app's next Save deletes them.
type Store struct {
	client    *kube.Client
	namespace string

	mu    sync.Mutex
	saved map[string]written // by app: what the cluster holds, as far as this Store knows
}

// written is what an app's state Secrets were last known to hold.
type written struct {
	resourceVersion string            // of the head
	sum             [sha256.Size]byte // of the JSON document
	parts           int               // the head's part count
	set             string            // the head's part set ("" when written before part sets)
	orphans         bool              // parts no head names may be left to delete
}

// NewStore returns a Store keeping state Secrets in namespace.
func NewStore(client *kube.Client, namespace string) *Store {
	return &Store{client: client, namespace: namespace, saved: map[string]written{}}
}

// Load reads every app's state. A state that cannot be read (undecodable, a part missing, a
// checksum that does not match) is left out and named in the returned error, next to the
// states that could be read: the caller decides what to do.
func (s *Store) Load(ctx context.Context) (map[string]*AppState, error) {
	list, err := s.client.Secrets(s.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: LabelState + "=" + LabelStateApp,
	})
	if err != nil {
		return nil, fmt.Errorf("list state secrets in %s: %w", s.namespace, err)
	}
	var heads []*corev1.Secret
	parts := map[string]*corev1.Secret{}
	for i := range list.Items {
		sec := &list.Items[i]
		if _, ok := sec.Labels[LabelPart]; ok {
			parts[sec.Name] = sec
		} else {
			heads = append(heads, sec)
		}
	}
	lookup := func(name string) (*corev1.Secret, error) {
		if p := parts[name]; p != nil {
			return p, nil
		}
		return nil, errMissingPart
	}
	states := make(map[string]*AppState, len(heads))
	loaded := map[string]string{} // head name → app
	var errs []error
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, head := range heads {
		st, w, err := readState(head, lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("state secret %s/%s: %w", s.namespace, head.Name, err))
			continue
		}
		if head.Name != SecretName(st.App) {
			errs = append(errs, fmt.Errorf("state secret %s/%s holds app %q, expected in %s", s.namespace, head.Name, st.App, SecretName(st.App)))
			continue
		}
		states[st.App] = st
		s.saved[st.App] = w
		loaded[head.Name] = st.App
	}
	// Parts a loaded head does not name are left over from a write that was cut short: the
	// app's next Save deletes them.
	for _, p := range parts {
		head, set, i, ok := splitPartName(p.Name)
		app, isLoaded := loaded[head]
		if ok && isLoaded && !s.saved[app].names(set, i) {
			w := s.saved[app]
			w.orphans = true
			s.saved[app] = w
		}
	}
	return states, errors.Join(errs...)
}

// Save writes st, creating the namespace and the Secrets when missing. It writes nothing when
// the cluster already holds the same state.
func (s *Store) Save(ctx context.Context, st *AppState) error {
	if st.App == "" {
		return errors.New("save state: no app name")
	}
	doc, err := encode(st)
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.App, err)
	}
	if len(doc) > maxDecoded {
		return fmt.Errorf("save state of %s: %d bytes, more than the %d a state may hold", st.App, len(doc), maxDecoded)
	}
	sum := sha256.Sum256(doc)
	s.mu.Lock()
	prev, known := s.saved[st.App]
	s.mu.Unlock()
	if known && prev.sum == sum {
		if prev.orphans {
			s.deleteSurplus(ctx, st.App, prev)
		}
		return nil
	}
	if !known {
		// A Store that has not loaded this app reads what is there first.
		cur, err := s.read(ctx, st.App)
		if err != nil {
			return fmt.Errorf("save state of %s: %w", st.App, err)
		}
		if cur.resourceVersion != "" && cur.sum == sum {
			s.remember(st.App, cur)
			if cur.orphans {
				s.deleteSurplus(ctx, st.App, cur)
			}
			return nil
		}
		prev = cur
	}

	data := compress(doc)
	chunks := split(data, MaxPartSize)
	whole := sha256.Sum256(data)
	wholeHex := hex.EncodeToString(whole[:])
	set := ""
	if len(chunks) > 1 {
		set = partSet(wholeHex)
	}
	// The new parts first, under names no head names yet (unless the head already holds this
	// very content): the old state stays complete until the head switches.
	for i := 1; i < len(chunks); i++ {
		if err := s.writePart(ctx, s.part(st.App, set, i, chunks[i])); err != nil {
			return fmt.Errorf("save state of %s: part %d of %d: %w", st.App, i+1, len(chunks), err)
		}
	}
	head := s.head(st.App, chunks[0], len(chunks), wholeHex, set)
	out, replaced, err := s.writeHead(ctx, head, prev.resourceVersion)
	if err != nil {
		return fmt.Errorf("save state of %s: %w", st.App, err)
	}
	// The old state's parts are now named by no head: delete them (and any other leftovers).
	now := written{resourceVersion: out.ResourceVersion, sum: sum, parts: len(chunks), set: set,
		orphans: prev.orphans || prev.parts > 1 || !known || replaced}
	s.remember(st.App, now)
	if now.orphans {
		s.deleteSurplus(ctx, st.App, now)
	}
	return nil
}

// Delete removes app's state: the head first, so the state is gone at once, then its parts.
// Deleting state that does not exist is not an error.
func (s *Store) Delete(ctx context.Context, app string) error {
	err := s.client.Secrets(s.namespace).Delete(ctx, SecretName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete state of %s: %w", app, err)
	}
	s.mu.Lock()
	delete(s.saved, app)
	s.mu.Unlock()
	if err := s.deleteParts(ctx, app, written{}); err != nil {
		return fmt.Errorf("delete state of %s: %w", app, err)
	}
	return nil
}

func (s *Store) remember(app string, w written) {
	s.mu.Lock()
	s.saved[app] = w
	s.mu.Unlock()
}

// read returns what the cluster holds for app; a zero resourceVersion when it holds no head.
// A head whose state cannot be read is reported with a zero sum: it will be overwritten.
func (s *Store) read(ctx context.Context, app string) (written, error) {
	secrets := s.client.Secrets(s.namespace)
	head, err := secrets.Get(ctx, SecretName(app), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return written{orphans: true}, nil // no head; parts of an interrupted write may exist
	}
	if err != nil {
		return written{}, err
	}
	cur := written{resourceVersion: head.ResourceVersion, orphans: true}
	n, _, err := headParts(head)
	if err != nil {
		return cur, nil
	}
	cur.parts, cur.set = n, head.Annotations[AnnotationPartSet]
	var parts map[string]*corev1.Secret
	if n > 1 {
		if parts, err = s.listParts(ctx, app); err != nil {
			return written{}, err
		}
		cur.orphans = false
		for name := range parts {
			if _, set, i, ok := splitPartName(name); ok && !cur.names(set, i) {
				cur.orphans = true
			}
		}
	}
	lookup := func(name string) (*corev1.Secret, error) {
		if p := parts[name]; p != nil {
			return p, nil
		}
		return nil, errMissingPart
	}
	if _, w, err := readState(head, lookup); err == nil {
		cur.sum = w.sum
	}
	return cur, nil
}

// writePart writes one part. Part names are derived from the content of the whole state, so
// a part that exists already (left by a write of the same state that was cut short) gets the
// same bytes.
func (s *Store) writePart(ctx context.Context, part *corev1.Secret) error {
	_, err := s.create(ctx, part)
	if apierrors.IsAlreadyExists(err) {
		_, err = s.client.Secrets(s.namespace).Update(ctx, part, metav1.UpdateOptions{})
	}
	return err
}

// writeHead writes the head over the version resourceVersion (create when empty). When the
// head changed or went away meanwhile, this state replaces whatever is there, and replaced is
// set.
func (s *Store) writeHead(ctx context.Context, head *corev1.Secret, resourceVersion string) (out *corev1.Secret, replaced bool, err error) {
	secrets := s.client.Secrets(s.namespace)
	if resourceVersion != "" {
		head.ResourceVersion = resourceVersion
		out, err := secrets.Update(ctx, head, metav1.UpdateOptions{})
		if err == nil || (!apierrors.IsConflict(err) && !apierrors.IsNotFound(err)) {
			return out, false, err
		}
	}
	cur, err := secrets.Get(ctx, head.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		head.ResourceVersion = ""
		out, err = s.create(ctx, head)
		return out, resourceVersion != "", err
	case err != nil:
		return nil, false, err
	}
	head.ResourceVersion = cur.ResourceVersion
	out, err = secrets.Update(ctx, head, metav1.UpdateOptions{})
	return out, true, err
}

// deleteSurplus deletes the parts of app that w does not name and records the outcome. A
// failure does not fail the Save that wrote the state (the state is written, and Load ignores
// surplus parts); the next Save tries again.
func (s *Store) deleteSurplus(ctx context.Context, app string, w written) {
	w.orphans = s.deleteParts(ctx, app, w) != nil
	s.mu.Lock()
	if cur, ok := s.saved[app]; ok && cur.resourceVersion == w.resourceVersion {
		s.saved[app] = w
	}
	s.mu.Unlock()
}

// deleteParts deletes every part of app that keep does not name (all of them for a zero keep).
func (s *Store) deleteParts(ctx context.Context, app string, keep written) error {
	parts, err := s.listParts(ctx, app)
	if err != nil {
		return err
	}
	var errs []error
	for name := range parts {
		if _, set, i, ok := splitPartName(name); !ok || keep.names(set, i) {
			continue
		}
		err := s.client.Secrets(s.namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete part %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// names reports whether part i of the part set set belongs to the state w describes.
func (w written) names(set string, i int) bool {
	return set == w.set && i >= 1 && i < w.parts
}

// listParts returns app's part Secrets by name.
func (s *Store) listParts(ctx context.Context, app string) (map[string]*corev1.Secret, error) {
	list, err := s.client.Secrets(s.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: LabelState + "=" + LabelStateApp + "," + LabelAppState + "=" + AppLabelValue(app) + "," + LabelPart,
	})
	if err != nil {
		return nil, fmt.Errorf("list state parts: %w", err)
	}
	head := SecretName(app)
	parts := make(map[string]*corev1.Secret, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		if h, _, _, ok := splitPartName(p.Name); ok && h == head {
			parts[p.Name] = p
		}
	}
	return parts, nil
}

func (s *Store) head(app string, data []byte, parts int, sum, set string) *corev1.Secret {
	sec := s.secret(SecretName(app), app, data)
	sec.Annotations = map[string]string{AnnotationParts: strconv.Itoa(parts), AnnotationSHA256: sum}
	if set != "" {
		sec.Annotations[AnnotationPartSet] = set
	}
	return sec
}

func (s *Store) part(app, set string, i int, data []byte) *corev1.Secret {
	sec := s.secret(partName(SecretName(app), set, i), app, data)
	sec.Labels[LabelPart] = strconv.Itoa(i)
	return sec
}

func (s *Store) secret(name, app string, data []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: s.namespace,
			Labels:    map[string]string{LabelState: LabelStateApp, LabelAppState: AppLabelValue(app)},
		},
		Type: SecretType,
		Data: map[string][]byte{DataKey: data},
	}
}

// create creates secret, and its namespace first when that is missing.
func (s *Store) create(ctx context.Context, secret *corev1.Secret) (*corev1.Secret, error) {
	out, err := s.client.Secrets(s.namespace).Create(ctx, secret, metav1.CreateOptions{})
	if err == nil || !apierrors.IsNotFound(err) {
		return out, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}
	if _, err := s.client.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", s.namespace, err)
	}
	return s.client.Secrets(s.namespace).Create(ctx, secret, metav1.CreateOptions{})
}

var errMissingPart = errors.New("missing")

// readState reads the state a head Secret names, its parts found with part. The written it
// returns has the head's version, the sum of the state's JSON document and the part count.
func readState(head *corev1.Secret, part func(name string) (*corev1.Secret, error)) (*AppState, written, error) {
	var w written
	data, n, err := assemble(head, part)
	if err != nil {
		return nil, w, err
	}
	doc, err := decompress(data)
	if err != nil {
		return nil, w, fmt.Errorf("decompress: %w", err)
	}
	st, err := decode(doc)
	if err != nil {
		return nil, w, fmt.Errorf("decode: %w", err)
	}
	// Sum what this version would write for st, so a Save of an equal state is a no-op even
	// if the stored bytes were produced by another version.
	norm, err := encode(st)
	if err != nil {
		return nil, w, fmt.Errorf("decode: %w", err)
	}
	return st, written{resourceVersion: head.ResourceVersion, sum: sha256.Sum256(norm), parts: n, set: head.Annotations[AnnotationPartSet]}, nil
}

// assemble returns the compressed state of a head and its parts, checked against the head's
// checksum, and the part count.
func assemble(head *corev1.Secret, part func(name string) (*corev1.Secret, error)) ([]byte, int, error) {
	first, ok := head.Data[DataKey]
	if !ok {
		return nil, 0, fmt.Errorf("no %s key", DataKey)
	}
	n, want, err := headParts(head)
	if err != nil {
		return nil, 0, err
	}
	if want == "" {
		return first, 1, nil // written before states had parts: gzip's own checksum guards it
	}
	set := head.Annotations[AnnotationPartSet]
	if n > 1 && set != "" && set != partSet(want) {
		return nil, 0, fmt.Errorf("annotation %s: %q does not match the checksum", AnnotationPartSet, set)
	}
	var buf bytes.Buffer
	buf.Write(first)
	for i := 1; i < n; i++ {
		name := partName(head.Name, set, i)
		p, err := part(name)
		if err != nil {
			return nil, n, fmt.Errorf("part %d of %d (%s): %w", i+1, n, name, err)
		}
		if p.Labels[LabelPart] != strconv.Itoa(i) {
			return nil, n, fmt.Errorf("part %d of %d (%s): label %s is %q", i+1, n, name, LabelPart, p.Labels[LabelPart])
		}
		d, ok := p.Data[DataKey]
		if !ok {
			return nil, n, fmt.Errorf("part %d of %d (%s): no %s key", i+1, n, name, DataKey)
		}
		buf.Write(d)
	}
	if got := sha256.Sum256(buf.Bytes()); hex.EncodeToString(got[:]) != want {
		return nil, n, fmt.Errorf("checksum of the %d parts does not match the head's: a write was cut short or a part was changed", n)
	}
	return buf.Bytes(), n, nil
}

// headParts returns the part count and checksum a head names; 1 and "" for a head written
// before states had parts.
func headParts(head *corev1.Secret) (int, string, error) {
	count, hasCount := head.Annotations[AnnotationParts]
	sum, hasSum := head.Annotations[AnnotationSHA256]
	if !hasCount && !hasSum {
		return 1, "", nil
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > maxParts {
		return 0, "", fmt.Errorf("annotation %s: %q is not a part count from 1 to %d", AnnotationParts, count, maxParts)
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return 0, "", fmt.Errorf("annotation %s: %q is not a sha256", AnnotationSHA256, sum)
	}
	return n, sum, nil
}

// splitPartName splits a part's name into its head's name, its part set ("" for a part
// written before part sets) and its index. Head names never hold a dot.
func splitPartName(name string) (head, set string, i int, ok bool) {
	fields := strings.Split(name, ".")
	switch len(fields) {
	case 2:
	case 3:
		set = fields[1]
		if set == "" {
			return "", "", 0, false
		}
	default:
		return "", "", 0, false
	}
	last := fields[len(fields)-1]
	i, err := strconv.Atoi(last)
	if err != nil || i < 1 || strconv.Itoa(i) != last {
		return "", "", 0, false
	}
	return fields[0], set, i, true
}

// split cuts data into chunks of at most size bytes; there is always at least one.
func split(data []byte, size int) [][]byte {
	chunks := make([][]byte, 0, len(data)/size+1)
	for len(data) > size {
		chunks = append(chunks, data[:size])
		data = data[size:]
	}
	return append(chunks, data)
}
