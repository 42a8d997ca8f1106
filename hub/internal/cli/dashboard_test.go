package cli

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestDashboardCommand runs `flotilla dashboard` against a populated hub, reads the address it
// prints, and finds the fleet on the page it serves; Ctrl-C (the context) stops it cleanly.
func TestDashboardCommand(t *testing.T) {
	h, _, _ := populatedHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- h.execute(ctx, &stdout, &stderr, []string{"dashboard"}) }()
	addr := regexp.MustCompile(`^dashboard: (http://127\.0\.0\.1:\d+/) \(hub `)
	var url string
	testwait.Until(t, 30*time.Second, "the dashboard's address on stdout", func() bool {
		m := addr.FindStringSubmatch(stdout.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	resp, err := http.Get(url + "?selector=env%3Dstaging")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
	}
	for _, want := range []string{">staging-1<", ">staging-2<", `href="/apps/api"`, "drift 3", "Degraded"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the fleet page lacks %q", want)
		}
	}
	if strings.Contains(string(body), ">prod-1<") {
		t.Errorf("selector env=staging shows prod-1")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("flotilla dashboard: %v (stderr %s)", err, stderr.String())
	}
	if r := h.flotilla(t, "dashboard", "--port", "70000"); r.err == nil || !strings.Contains(r.err.Error(), "--port 70000") {
		t.Errorf("--port 70000: %v", r.err)
	}
}
