package app

import (
	"testing"

	"github.com/flotilla-dev/flotilla/shared/helpcheck"
)

// TestHelpValueNames: `flotilla-agent --help` (and each subcommand's) names every flag's value
// by its type, never by back-quoted words of its usage (`--join-token flotilla cluster add`).
func TestHelpValueNames(t *testing.T) {
	problems, err := helpcheck.ValueNames(NewRootCommand())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
