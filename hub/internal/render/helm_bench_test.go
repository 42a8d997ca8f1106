package render

import (
	"context"
	"testing"
)

// BenchmarkRenderChart200: one in-process render of a packaged chart of 200 objects (load the
// archive, check for lookup, template, decode), what a render cache miss costs.
func BenchmarkRenderChart200(b *testing.B) {
	files := map[string][]byte{
		"Chart.yaml":  []byte("apiVersion: v2\nname: big\nversion: 1.0.0\n"),
		"values.yaml": []byte("count: 200\n"),
		"templates/cms.yaml": []byte(`{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: {{ $.Release.Name }}-{{ $i }}, labels: {index: "{{ $i }}"}}
data: {payload: {{ printf "%d" $i | sha256sum | quote }}}
{{- end }}
`),
	}
	arch := packageChart(b, files)
	r := New(Options{})
	ctx := context.Background()
	var n int
	for b.Loop() {
		objs, err := r.RenderChart(ctx, ChartSource{Name: "big", Archive: arch}, Release{Name: "big", Namespace: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		n = len(objs)
	}
	if n != 200 {
		b.Fatalf("%d objects, want 200", n)
	}
	b.ReportMetric(float64(len(arch)), "archive-bytes")
}
