package app

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/shared/helpcheck"
)

// TestAppsRepoWithCredentialsRefused: --apps-repo with credentials in the URL is refused at
// flag validation, naming the flag and --repo-credentials and not repeating the credentials.
func TestAppsRepoWithCredentialsRefused(t *testing.T) {
	const canary = "apps-repo-canary-42"
	o := NewOptions()
	o.DataDir = t.TempDir()
	o.AppsRepo = "https://x-access-token:" + canary + "@git.example.com/org/apps.git"
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), `--apps-repo "https://git.example.com/org/apps.git"`) ||
		!strings.Contains(err.Error(), "--repo-credentials") || strings.Contains(err.Error(), canary) {
		t.Fatalf("Validate = %v, want --apps-repo refused without its credentials, pointing to --repo-credentials", err)
	}
	o.AppsRepo = "ssh://git@git.example.com/org/apps.git"
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate with an ssh user name = %v", err)
	}
}

// TestHelpValueNames: every command's --help names each flag's value by its type, never by
// back-quoted words of its usage, which pflag would take for the value name.
func TestHelpValueNames(t *testing.T) {
	problems, err := helpcheck.ValueNames(NewRootCommand())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
