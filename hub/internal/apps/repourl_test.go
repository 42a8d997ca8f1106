package apps

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckRepoURL(t *testing.T) {
	const canary = "tok-canary-1234"
	tests := []struct {
		url   string
		shown string // "" when the URL is allowed
	}{
		{"https://github.com/org/repo.git", ""},
		{"ssh://git@github.com/org/repo.git", ""},
		{"git@github.com:org/repo.git", ""},
		{"git://git.example.com/repo", ""},
		{"https://github.com/org/repo@v1", ""},
		{"https://x-access-token:" + canary + "@github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"https://" + canary + "@github.com/org/repo.git", "https://github.com/org/repo.git"},
		{"HTTP://user:" + canary + "@git.example.com:8080", "HTTP://git.example.com:8080"},
		{"ssh://git:" + canary + "@github.com/org/repo.git", "ssh://github.com/org/repo.git"},
		{"git://" + canary + "@git.example.com/repo", "git://git.example.com/repo"},
		{"https://user:" + canary + "@host:port/repo", "https://host:port/repo"}, // unparsable
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckRepoURL(tt.url)
			if tt.shown == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCredentialsInURL) || strings.Contains(err.Error(), canary) ||
				!strings.Contains(err.Error(), `"`+tt.shown+`"`) || !strings.Contains(err.Error(), "--repo-credentials") {
				t.Errorf("error = %v, want ErrCredentialsInURL naming %q and --repo-credentials, without the credentials", err, tt.shown)
			}
		})
	}
}

// TestParseRefusesCredentialsInRepoURL: both kinds of Application fail to load with an error
// naming the file, the app and the field, and never the credentials.
func TestParseRefusesCredentialsInRepoURL(t *testing.T) {
	const canary = "tok-canary-5678"
	for _, doc := range []string{
		head + "spec: {source: {repoURL: 'https://bot:" + canary + "@git.example.com/org/k8s.git'}, destination: {clusters: [a]}}\n",
		"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: api}\n" +
			"spec: {source: {repoURL: 'https://bot:" + canary + "@git.example.com/org/k8s.git'}, destination: {name: a}}\n",
	} {
		apps, errs := Parse("apps/api.yaml", []byte(doc))
		if len(apps) != 0 || len(errs) != 1 {
			t.Fatalf("Parse = %d apps, errors %v; want the app refused", len(apps), errs)
		}
		msg := errs[0].Error()
		want := `apps/api.yaml: Application "api": spec.source.repoURL: "https://git.example.com/org/k8s.git": credentials in a repository URL are not allowed`
		if !strings.HasPrefix(msg, want) || strings.Contains(msg, canary) {
			t.Errorf("error = %q, want it to start with %q and hold no credentials", msg, want)
		}
	}
}
