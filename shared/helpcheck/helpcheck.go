// Package helpcheck checks the --help of a command tree, for the tests of both binaries.
package helpcheck

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ValueNames runs `--help` on every command under root and returns a problem for each flag
// whose help does not name its value by its type: pflag takes the first back-quoted words of
// a usage for the value name (`--join-token flotilla cluster add`), so no usage may have any.
func ValueNames(root *cobra.Command) ([]string, error) {
	var problems []string
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append(strings.Fields(c.CommandPath())[1:], "--help"))
		if err := root.Execute(); err != nil {
			return fmt.Errorf("%s --help: %w", c.CommandPath(), err)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				problems = append(problems, fmt.Sprintf("%s --%s: usage has back quotes, taken for the value name: %q", c.CommandPath(), f.Name, f.Usage))
			}
			byType := *f
			byType.Usage = strings.ReplaceAll(f.Usage, "`", "")
			want := "--" + f.Name
			if name, _ := pflag.UnquoteUsage(&byType); name != "" {
				want += " " + name
			}
			if !strings.Contains(out.String(), want+" ") {
				problems = append(problems, fmt.Sprintf("%s --help does not show %q", c.CommandPath(), want))
			}
		})
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return problems, walk(root)
}
