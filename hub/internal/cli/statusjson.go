package cli

import (
	"encoding/json"
	"strconv"
)

// jsonAppender is an item that writes itself as writeJSONItems writes an item with
// encoding/json (json.Marshal, then json.Indent with the prefix and a two-space indent), byte
// for byte, without reflection: a fleet's status is 20,000 items, and encoding/json spent more
// of the CLI's time on them than reading them from the hub.
type jsonAppender interface {
	appendJSON(b []byte, prefix string) ([]byte, error)
}

// appendJSON appends the status item as encoding/json would, indented under prefix.
func (it *statusItem) appendJSON(b []byte, prefix string) ([]byte, error) {
	in := prefix + "  "
	b = append(b, '{')
	b = appendJSONField(b, in, "cluster", it.Cluster, true)
	b = appendJSONField(b, in, "app", it.App, false)
	b = appendJSONField(b, in, "sync", it.Sync, false)
	b = appendJSONField(b, in, "health", it.Health, false)
	b = appendJSONField(b, in, "desiredRevision", it.DesiredRevision, false)
	b = appendJSONField(b, in, "appliedRevision", it.AppliedRevision, false)
	b = appendJSONField(b, in, "healthyRevision", it.HealthyRevision, false)
	b = appendJSONKey(b, in, "lastSeen", false)
	if it.LastSeen == nil {
		b = append(b, "null"...)
	} else {
		t, err := it.LastSeen.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b = append(b, t...)
	}
	b = appendJSONKey(b, in, "drift", false)
	switch {
	case it.Drift == nil:
		b = append(b, "null"...)
	case len(it.Drift) == 0:
		b = append(b, "[]"...)
	default:
		b = append(b, '[')
		for i := range it.Drift {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '\n')
			b = append(b, in+"  "...)
			b = it.Drift[i].appendJSON(b, in+"  ")
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, ']')
	}
	b = appendJSONField(b, in, "message", it.Message, false)
	if it.CommitToAppliedMs != 0 {
		b = appendJSONKey(b, in, "commitToAppliedMs", false)
		b = strconv.AppendInt(b, it.CommitToAppliedMs, 10)
	}
	if it.PinnedRevision != "" {
		b = appendJSONField(b, in, "pinnedRevision", it.PinnedRevision, false)
	}
	if it.Rollout != "" {
		b = appendJSONField(b, in, "rollout", it.Rollout, false)
	}
	b = append(b, '\n')
	b = append(b, prefix...)
	return append(b, '}'), nil
}

// appendJSON appends the drift item as encoding/json would, indented under prefix.
func (d *driftItem) appendJSON(b []byte, prefix string) []byte {
	in := prefix + "  "
	b = append(b, '{')
	first := true
	field := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = appendJSONField(b, in, name, v, first)
		first = false
	}
	field("group", d.Group, true)
	field("kind", d.Kind, false)
	field("namespace", d.Namespace, true)
	field("name", d.Name, false)
	field("type", d.Type, false)
	field("diff", d.Diff, true)
	if d.Contested {
		b = appendJSONKey(b, in, "contested", first)
		b = append(b, "true"...)
	}
	b = append(b, '\n')
	b = append(b, prefix...)
	return append(b, '}')
}

// appendJSONKey appends `"name": ` on a new line indented by in, after a comma unless first.
func appendJSONKey(b []byte, in, name string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '\n')
	b = append(b, in...)
	b = appendJSONString(b, name)
	return append(b, ": "...)
}

func appendJSONField(b []byte, in, name, v string, first bool) []byte {
	return appendJSONString(appendJSONKey(b, in, name, first), v)
}

// appendJSONString appends s as a JSON string, as json.Marshal writes it: printable ASCII
// other than the quote, the backslash and the HTML-escaped <, > and & as is; anything else
// through json.Marshal itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
