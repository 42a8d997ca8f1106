package bundle

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(apiVersion, kind, ns, name string, extra map[string]any) *unstructured.Unstructured {
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}
	if ns != "" {
		o["metadata"].(map[string]any)["namespace"] = ns
	}
	for k, v := range extra {
		o[k] = v
	}
	return &unstructured.Unstructured{Object: o}
}

func TestNewIsCanonical(t *testing.T) {
	a := obj("v1", "ConfigMap", "x", "a", map[string]any{"data": map[string]any{"z": "1", "a": "2"}})
	b := obj("apps/v1", "Deployment", "x", "b", nil)
	c := obj("v1", "Namespace", "", "x", nil)
	one, err := New([]*unstructured.Unstructured{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	two, err := New([]*unstructured.Unstructured{c, b, a})
	if err != nil {
		t.Fatal(err)
	}
	if one.Digest != two.Digest || !bytes.Equal(one.Data, two.Data) {
		t.Fatalf("order changed the bundle: %s vs %s", one.Digest, two.Digest)
	}
	objs, err := Decode(one.Data)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, o := range objs {
		refs = append(refs, Ref(o))
	}
	want := []string{"ConfigMap/x/a", "Namespace/x", "Deployment.apps/x/b"}
	for i := range want {
		if refs[i] != want[i] {
			t.Fatalf("order = %v, want %v", refs, want)
		}
	}
	changed, _ := New([]*unstructured.Unstructured{obj("v1", "ConfigMap", "x", "a", map[string]any{"data": map[string]any{"z": "9"}}), b, c})
	if changed.Digest == one.Digest {
		t.Fatal("a changed object kept the digest")
	}
}

func TestNewRejectsDuplicates(t *testing.T) {
	_, err := New([]*unstructured.Unstructured{obj("v1", "ConfigMap", "x", "a", nil), obj("v1", "ConfigMap", "x", "a", nil)})
	if err == nil || err.Error() != "object ConfigMap/x/a appears twice" {
		t.Fatalf("err = %v", err)
	}
}

func TestCompressSplitRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("flotilla "), 100000)
	z := Compress(data)
	var joined []byte
	for _, c := range Split(z, 1000) {
		if len(c) > 1000 {
			t.Fatalf("chunk of %d bytes", len(c))
		}
		joined = append(joined, c...)
	}
	out, err := Decompress(joined, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatal("round trip changed the data")
	}
	if _, err := Decompress(z, int64(len(data))-1); err == nil {
		t.Fatal("limit not enforced")
	}
	if got := len(Split(nil, 10)); got != 1 {
		t.Fatalf("empty data gives %d chunks, want 1", got)
	}
}
