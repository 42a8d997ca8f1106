package hubclient

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// statusBudget bounds the encoded size of one app's status, well within MaxMessageSize: a
// status too large to send would fail every stream, and every reconnect, for good.
const statusBudget = 1 << 20

// maxDiff bounds one drift item's diff in a status that is over its budget.
const maxDiff = 16 << 10

// fitStatus keeps p within budget bytes. When it is larger, diffs are cut to maxDiff first;
// then resources and drift items are left out, the unhealthy resources and the drift items
// kept before the healthy resources, and the message says how many were left out.
func fitStatus(p *flotillav1.AppStatus, budget int) {
	if proto.Size(p) <= budget {
		return
	}
	for _, d := range p.Drift {
		if len(d.Diff) > maxDiff {
			d.Diff = cutUTF8(d.Diff, maxDiff) + fmt.Sprintf("\n… %d more bytes of diff not shown", len(d.Diff)-maxDiff)
		}
	}
	if proto.Size(p) <= budget {
		return
	}
	resources, drift := p.Resources, p.Drift
	p.Resources, p.Drift = nil, nil
	// Room for the items: what is left after the rest and the longest note fitStatus adds.
	note := omittedNote(len(resources), len(drift))
	room := budget - proto.Size(p) - len("; ") - len(note)
	keep := func(m proto.Message) bool {
		n := proto.Size(m)
		n += protowire.SizeTag(11) + protowire.SizeBytes(n) - n // field tag and length
		if n > room {
			return false
		}
		room -= n
		return true
	}
	keptRes := make([]bool, len(resources))
	for i, r := range resources { // unhealthy first: they are what an operator looks for
		if r.Health != string(health.Healthy) {
			keptRes[i] = keep(r)
		}
	}
	var keptDrift []*flotillav1.DriftItem
	for _, d := range drift {
		if keep(d) {
			keptDrift = append(keptDrift, d)
		}
	}
	for i, r := range resources {
		if r.Health == string(health.Healthy) {
			keptRes[i] = keep(r)
		}
	}
	for i, r := range resources {
		if keptRes[i] {
			p.Resources = append(p.Resources, r)
		}
	}
	p.Drift = keptDrift
	note = omittedNote(len(resources)-len(p.Resources), len(drift)-len(p.Drift))
	if p.Message == "" {
		p.Message = note
	} else {
		p.Message += "; " + note
	}
}

// omittedNote says how many resources and drift items a status leaves out.
func omittedNote(resources, drift int) string {
	var parts []string
	if resources > 0 {
		parts = append(parts, fmt.Sprintf("%d more resources", resources))
	}
	if drift > 0 {
		parts = append(parts, fmt.Sprintf("%d more drifted objects", drift))
	}
	return strings.Join(parts, " and ") + " not shown (status size limit)"
}

// cutUTF8 returns at most n bytes of s, not splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
