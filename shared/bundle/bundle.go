// Package bundle is the unit the hub sends and the agent applies: a canonical, sorted set of
// Kubernetes objects, addressed by the sha256 of its bytes.
package bundle

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Bundle is a canonical object set and its digest.
type Bundle struct {
	// Data is the canonical encoding: a JSON array of the objects sorted by group, kind,
	// namespace and name, each with its keys sorted.
	Data []byte
	// Digest is "sha256:<hex>" of Data.
	Digest string

	compressOnce sync.Once
	compressed   []byte
}

// Compressed returns Data gzip-compressed, computed once per bundle: a bundle sent to a
// thousand agents is compressed once.
func (b *Bundle) Compressed() []byte {
	b.compressOnce.Do(func() { b.compressed = Compress(b.Data) })
	return b.compressed
}

// New builds the canonical bundle of objs. Two objects with the same identity are an error.
func New(objs []*unstructured.Unstructured) (*Bundle, error) {
	sorted := make([]*unstructured.Unstructured, len(objs))
	copy(sorted, objs)
	sort.SliceStable(sorted, func(i, j int) bool { return Key(sorted[i]) < Key(sorted[j]) })
	raw := make([]map[string]any, len(sorted))
	for i, o := range sorted {
		if i > 0 && Key(sorted[i-1]) == Key(o) {
			return nil, fmt.Errorf("object %s appears twice", Ref(o))
		}
		raw[i] = o.Object
	}
	data, err := json.Marshal(raw) // maps marshal with sorted keys: canonical
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	return &Bundle{Data: data, Digest: Digest(data)}, nil
}

// Decode parses canonical bundle data back into objects.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	var raw []map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decode bundle: %w", err)
	}
	objs := make([]*unstructured.Unstructured, len(raw))
	for i, r := range raw {
		objs[i] = &unstructured.Unstructured{Object: r}
	}
	return objs, nil
}

// Digest returns "sha256:<hex>" of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Key orders and identifies an object: group/kind/namespace/name.
func Key(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + o.GetNamespace() + "/" + o.GetName()
}

// Ref names an object for people: "Kind/namespace/name" or "Kind/name", with the group when
// it has one ("Deployment.apps/api/web").
func Ref(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	kind := gvk.Kind
	if gvk.Group != "" {
		kind += "." + gvk.Group
	}
	if ns := o.GetNamespace(); ns != "" {
		return kind + "/" + ns + "/" + o.GetName()
	}
	return kind + "/" + o.GetName()
}

// Compress gzips data.
func Compress(data []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(data) // writes to a bytes.Buffer cannot fail
	_ = zw.Close()
	return buf.Bytes()
}

// Decompress gunzips data, refusing output larger than limit bytes.
func Decompress(data []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompress bundle: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("decompress bundle: %w", err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("decompress bundle: larger than %d bytes", limit)
	}
	return out, nil
}

// Split cuts data into chunks of at most size bytes (at least one chunk, even when empty).
func Split(data []byte, size int) [][]byte {
	if len(data) <= size {
		return [][]byte{data}
	}
	var chunks [][]byte
	for len(data) > 0 {
		n := min(size, len(data))
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	return chunks
}
