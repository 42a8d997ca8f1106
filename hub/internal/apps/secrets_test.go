package apps

import (
	"strings"
	"testing"
)

func TestParseSecretsMode(t *testing.T) {
	const doc = "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: api}\n" +
		"spec: {source: {repoURL: r}, destination: {clusters: [a], namespace: api}%s}\n"
	tests := []struct {
		field   string
		want    SecretsMode
		wantErr string
	}{
		{"", SecretsWarn, ""},
		{", secrets: warn", SecretsWarn, ""},
		{", secrets: deny", SecretsDeny, ""},
		{", secrets: allow", "", `spec.secrets: "allow" must be warn or deny`},
	}
	for _, tt := range tests {
		list, errs := Parse("apps/api.yaml", []byte(strings.Replace(doc, "%s", tt.field, 1)))
		if tt.wantErr != "" {
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.wantErr) {
				t.Errorf("%q: errors %v, want one with %q", tt.field, errs, tt.wantErr)
			}
			continue
		}
		if len(errs) > 0 || len(list) != 1 {
			t.Fatalf("%q: %v", tt.field, errs)
		}
		if list[0].Secrets != tt.want {
			t.Errorf("%q: Secrets %q, want %q", tt.field, list[0].Secrets, tt.want)
		}
	}
}
