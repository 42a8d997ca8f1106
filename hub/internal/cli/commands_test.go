package cli

import (
	"strings"
	"testing"
)

// formats are the values of -o every listing command takes.
var formats = []string{"table", "wide", "json", "yaml"}

// TestListingGolden: the listing commands in every output format, and their filters, print
// what testdata/ holds, against a hub with a populated fleet.
func TestListingGolden(t *testing.T) {
	h := startHub(t)
	f := populate(t, h)
	n := newNormaliser(h)
	n.add(f.repo, "<repo>")

	var cases [][]string
	for _, cmd := range [][]string{{"status"}, {"clusters"}, {"apps"}, {"history", "api"}} {
		for _, o := range formats {
			cases = append(cases, append(append([]string{}, cmd...), "-o", o))
		}
	}
	cases = append(cases,
		[]string{"status", "--app", "api", "--selector", "env=staging", "-o", "wide"},
		[]string{"status", "--cluster", "staging-2", "--drifted", "-o", "json"},
		[]string{"status", "--stale"},
		[]string{"status", "--revision", f.rev2[:7]},
		[]string{"history", "worker", "--cluster", "staging-2"},
		[]string{"history", "api", "--limit", "2", "-o", "wide"},
		[]string{"history", "nope"},
		[]string{"diff", "api"},
		[]string{"diff", "api", "--cluster", "prod-1"},
	)
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := h.flotilla(t, args...)
			if r.err != nil {
				t.Errorf("flotilla %s: %v", strings.Join(args, " "), r.err)
			}
			golden(t, goldenName(args), n, r)
		})
	}
}

// TestBadInputGolden: a bad -o value, an unknown cluster or app, and a bad flag are refused
// with a message naming what is at fault.
func TestBadInputGolden(t *testing.T) {
	h := startHub(t)
	populate(t, h)
	n := newNormaliser(h)
	for _, c := range []struct {
		args  []string
		names string // what the error must name
	}{
		{[]string{"status", "-o", "xml"}, `"xml"`},
		{[]string{"clusters", "-o", "xml"}, `"xml"`},
		{[]string{"apps", "-o", "csv"}, `"csv"`},
		{[]string{"history", "api", "-o", "xml"}, `"xml"`},
		{[]string{"promote", "api", "--from", "staging", "--to", "production", "-o", "wide"}, `"wide"`},
		{[]string{"diff", "api", "--cluster", "nope"}, "cluster nope"},
		{[]string{"token", "create", "--cluster", "nope"}, `"nope"`},
		{[]string{"cluster", "revoke", "nope"}, `"nope"`},
		{[]string{"cluster", "add", "prod-1"}, `"prod-1"`},
		{[]string{"cluster", "add", "edge-9", "--labels", "env"}, `"env"`},
		{[]string{"sync", "api", "--cluster", "nope"}, "cluster nope"},
		{[]string{"sync", "nope"}, `"nope"`},
		{[]string{"rollback", "api", "--cluster", "nope", "--to", "v1"}, `"api": no matching cluster`},
		{[]string{"rollback", "nope", "--cluster", "prod-1", "--to", "v1"}, `"nope"`},
		{[]string{"promote", "nope", "--from", "staging", "--to", "production"}, `"nope"`},
		{[]string{"promote", "api", "--from", "staging", "--to", "production", "--soak", "1h"}, "soak"},
		{[]string{"status", "--selector", "env in (", "-o", "wide"}, `"env in ("`},
		{[]string{"apps", "confirm-removal"}, "no removal is held"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := h.flotilla(t, c.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), c.names) {
				t.Errorf("flotilla %s: error %v, want one naming %s", strings.Join(c.args, " "), r.err, c.names)
			}
			golden(t, "error_"+goldenName(c.args), n, r)
		})
	}
}

// goldenName is the file name of a run's golden file: its arguments, made safe.
func goldenName(args []string) string {
	s := strings.Join(args, "_")
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '=':
			return r
		}
		return '_'
	}, s)
}
