package render

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckAliases(t *testing.T) {
	bomb := func(levels int) string {
		var b strings.Builder
		b.WriteString("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
		for i := 1; i <= levels; i++ {
			p := fmt.Sprintf("*l%d", i-1)
			fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.Join([]string{p, p, p, p, p, p, p, p, p}, ", "))
		}
		return b.String()
	}
	tests := []struct {
		name, data string
		bad        bool
	}{
		{"no aliases", "a: 1\nb: [x, y]\n", false},
		{"a few aliases", "defaults: &d {cpu: 1, memory: 1Gi}\na: *d\nb: *d\nc: {<<: *d, cpu: 2}\n", false},
		{"small fan-out", bomb(4), false},
		{"billion laughs", bomb(9), true},
		{"bomb in a later document", "a: 1\n---\n" + bomb(9), true},
		{"a star in a string", "command: ['ls', '*.yaml']\n", false},
		{"not YAML", "*** {[\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAliases([]byte(tt.data))
			if tt.bad != (err != nil) || err != nil && !errors.Is(err, ErrAliases) {
				t.Errorf("checkAliases = %v, want error %v", err, tt.bad)
			}
		})
	}
}
