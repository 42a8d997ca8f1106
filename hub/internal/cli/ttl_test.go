package cli

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestTTLRefusedBeforeAsking: --ttl below a second (which used to become the default hour),
// negative or above the maximum is refused naming the flag, before the hub is asked.
func TestTTLRefusedBeforeAsking(t *testing.T) {
	noConfig := filepath.Join(t.TempDir(), "none.yaml") // asking the hub would fail on this
	for _, args := range [][]string{
		{"cluster", "add", "edge-1", "--ttl", "500ms"},
		{"cluster", "add", "edge-1", "--ttl", "-1h"},
		{"cluster", "add", "edge-1", "--ttl", "0s"},
		{"cluster", "add", "edge-1", "--ttl", "8760h"},
		{"token", "create", "--cluster", "edge-1", "--ttl", "999ms"},
		{"token", "create", "--cluster", "edge-1", "--ttl", "-5m"},
		{"token", "create", "--cluster", "edge-1", "--ttl", "1000h"},
	} {
		root := &cobra.Command{Use: "flotilla", SilenceUsage: true, SilenceErrors: true}
		AddCommands(root)
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(append(args, "--config", noConfig))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "--ttl ") {
			t.Errorf("flotilla %s: %v, want --ttl refused", strings.Join(args, " "), err)
		}
		if err != nil && strings.Contains(err.Error(), "no operator config") {
			t.Errorf("flotilla %s: asked the hub before checking --ttl: %v", strings.Join(args, " "), err)
		}
	}
}
