package promote

import (
	"fmt"
	"strings"
	"time"
)

// Plan is a promotion about to be committed.
type Plan struct {
	App        string
	From, To   string // environments
	Source     Source
	SourcePath string // the app's overlay in the source environment
	TargetPath string // the file written in the target environment's overlay
	Changes    []ImageChange
	Soak       time.Duration
	// By is the operator who asked.
	By string
}

// BranchName is the default branch of a promotion: flotilla/promote-<app>-<short-rev>.
func BranchName(app, rev string) string {
	return "flotilla/promote-" + app + "-" + ShortRev(rev)
}

// CommitMessage names what was promoted, from which revision, and the clusters that vouched
// for it.
func (p *Plan) CommitMessage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Promote %s from %s to %s at %s\n\n", p.App, p.From, p.To, ShortRev(p.Source.Revision))
	fmt.Fprintf(&b, "Revision %s has been Healthy on every cluster of env=%s since %s\n",
		p.Source.Revision, p.From, p.Source.HealthySince.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "(soak time %s). Copied from %s to %s:\n\n", p.Soak, p.SourcePath, p.TargetPath)
	for _, c := range p.Changes {
		from := c.From
		if from == "" {
			from = "(no override)"
		}
		fmt.Fprintf(&b, "  image %s: %s -> %s\n", c.Name, from, c.To)
	}
	fmt.Fprintf(&b, "\nSource-Revision: %s\n", p.Source.Revision)
	fmt.Fprintf(&b, "Vouched-By: %s\n", strings.Join(p.Source.Clusters, ", "))
	if p.By != "" {
		fmt.Fprintf(&b, "Promoted-By: %s\n", p.By)
	}
	return b.String()
}
