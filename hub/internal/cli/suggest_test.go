package cli

import (
	"slices"
	"testing"
)

func TestDiffPointers(t *testing.T) {
	for _, tc := range []struct {
		diff string
		want []string
	}{
		{"spec.replicas: 5 → 3", []string{"/spec/replicas"}},
		{"metadata.annotations.sidecar.istio.io/status: \"x\" → <none>", []string{"/metadata/annotations/sidecar.istio.io~1status"}},
		{"spec.template.metadata.labels.app.kubernetes.io/version: \"2\" → \"1\"", []string{"/spec/template/metadata/labels/app.kubernetes.io~1version"}},
		{"data.app.properties: (value hidden)", []string{"/data/app.properties"}},
		{"webhooks: [a] → [b]\nwebhooks: [a] → [b]", []string{"/webhooks"}},
		{"spec.a~b: 1 → 2\n… and 3 more", []string{"/spec/a~0b"}},
		{"  spec.replicas:\n-   3\n+   5", []string{"/spec/replicas"}},
		{"", nil},
	} {
		if got := diffPointers(tc.diff); !slices.Equal(got, tc.want) {
			t.Errorf("diffPointers(%q) = %q, want %q", tc.diff, got, tc.want)
		}
	}
}
