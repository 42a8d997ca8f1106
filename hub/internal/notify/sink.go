package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// permanentError is a delivery failure a retry would not fix (the receiver refused the
// request).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// body renders a notification as a sink of type typ takes it.
func body(typ string, n Notification) ([]byte, error) {
	if typ == SinkSlack {
		return json.Marshal(map[string]string{"text": slackText(n)})
	}
	return json.Marshal(n)
}

// eventTitles are the readable names of the events, with an emoji for Slack.
var eventTitles = map[Event]struct{ emoji, title string }{
	DriftDetected:   {":warning:", "Drift detected"},
	DriftCorrected:  {":white_check_mark:", "Drift corrected"},
	SyncSucceeded:   {":rocket:", "Sync succeeded"},
	SyncFailed:      {":x:", "Sync failed"},
	HealthDegraded:  {":broken_heart:", "Health degraded"},
	HealthRecovered: {":green_heart:", "Health recovered"},
	RolledBack:      {":rewind:", "Rolled back automatically"},
	RollbackFailed:  {":rotating_light:", "Rollback failed"},
	PruneHeld:       {":raised_hand:", "Prune held for confirmation"},
	ClusterStale:    {":electric_plug:", "Cluster stale"},
	RepoStale:       {":card_file_box:", "Repository stale"},
	RemovalHeld:     {":raised_hand:", "Removal of most applications held for confirmation"},
}

// slackText is a notification as Slack mrkdwn: a title line naming the event, app and
// cluster, the summary, then the commit.
func slackText(n Notification) string {
	t := eventTitles[n.Event]
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s*", t.emoji, t.title)
	switch {
	case n.App != "" && n.Cluster != "":
		fmt.Fprintf(&b, ": *%s* on *%s*", slackEscape(n.App), slackEscape(n.Cluster))
	case n.App != "":
		fmt.Fprintf(&b, ": *%s*", slackEscape(n.App))
	case n.Cluster != "":
		fmt.Fprintf(&b, ": *%s*", slackEscape(n.Cluster))
	}
	b.WriteString("\n" + slackEscape(n.Summary))
	if n.Revision != "" {
		fmt.Fprintf(&b, "\nRevision `%s`", shortRev(n.Revision))
		if n.Author != "" {
			fmt.Fprintf(&b, " by %s", slackEscape(n.Author))
		}
		if n.Message != "" {
			fmt.Fprintf(&b, ": %s", slackEscape(n.Message))
		}
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// post delivers one body to the sink's URL, read from its file now. 2xx is success; 4xx
// other than 408 and 429 is permanent. Errors never hold the URL.
func post(ctx context.Context, client *http.Client, s *SinkConfig, data []byte) error {
	u, err := readURL(s.URLFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(data))
	if err != nil {
		return errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "flotilla-hub")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the URL
		}
		return fmt.Errorf("post: %s", scrubURL(err.Error(), u))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return &permanentError{fmt.Errorf("receiver answered %s", resp.Status)}
	default:
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
}

// scrubURL removes the URL, its path and its query from a message.
func scrubURL(msg string, u *url.URL) string {
	for _, s := range []string{u.String(), u.RawQuery, u.EscapedPath()} {
		if len(s) > 1 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}
