package cli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the output the tests get")

// result is what one run of the CLI printed and returned.
type result struct {
	args           []string
	stdout, stderr string
	err            error
}

// flotilla runs the CLI's command tree in this process against h, as `flotilla ARGS --config
// DATA_DIR/admin.yaml`, and captures what it prints.
func (h *testHub) flotilla(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	err := h.execute(ctx, &stdout, &stderr, args)
	return result{args: args, stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// execute runs `flotilla ARGS --config DATA_DIR/admin.yaml` with ctx, writing to stdout and
// stderr.
func (h *testHub) execute(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	root := &cobra.Command{Use: "flotilla", SilenceUsage: true, SilenceErrors: true}
	AddCommands(root)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(append(append([]string{}, args...), "--config", h.config))
	return root.ExecuteContext(ctx)
}

// syncBuffer is a buffer a test may read while a command still writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*syncBuffer)(nil)

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// transcript is the run as a golden file shows it: the command, then what it printed on
// standard output, standard error, and the error it returned (sections left out when empty).
func (r result) transcript(n *normaliser) string {
	var b strings.Builder
	b.WriteString("$ flotilla " + strings.Join(r.args, " ") + "\n")
	b.WriteString(n.apply(r.stdout))
	if r.stderr != "" {
		b.WriteString("--- stderr\n" + n.apply(r.stderr))
	}
	if r.err != nil {
		b.WriteString("--- error\n" + n.apply(r.err.Error()) + "\n")
	}
	return b.String()
}

// golden compares r with testdata/NAME.golden, or writes it there with -update.
func golden(t *testing.T, name string, n *normaliser, r result) {
	t.Helper()
	got := r.transcript(n)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./hub/internal/cli -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("flotilla %s: output differs from %s (go test ./hub/internal/cli -update rewrites it)\n--- got\n%s--- want\n%s",
			strings.Join(r.args, " "), path, got, want)
	}
}

// normaliser is the one place volatile output is made stable: times, ages and durations,
// join tokens, and the values a test registers (temporary paths, the hub's port, commits the
// hub made). Tables are re-aligned after their cells are normalised, so a golden file still
// shows the columns as the CLI aligns them.
type normaliser struct {
	known map[string]string // volatile value → its placeholder
}

func newNormaliser(h *testHub) *normaliser {
	n := &normaliser{known: map[string]string{}}
	n.add(h.Addr, "<hub>")
	return n
}

// add replaces value by placeholder in every output from now on.
func (n *normaliser) add(value, placeholder string) {
	if value != "" {
		n.known[value] = placeholder
	}
}

var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`flt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[0-9a-f]{64}`), "<join-token>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<time>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`), "<time>"},
	{regexp.MustCompile(`(\x1b\[2J)\d\d:\d\d:\d\d`), "${1}<clock>"}, // status --watch
	{regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+s ago\b|\bjust now\b`), "<age>"},
	{regexp.MustCompile(`\((\d+h)?(\d+m)?\d+(\.\d+)?(s|ms) after commit\)`), "(<duration> after commit)"},
	{regexp.MustCompile(`("?commitToAppliedMs"?: )\d+`), "${1}<ms>"},
	{regexp.MustCompile(`\bHealthy for (\d+h)?(\d+m)?\d+s\b`), "Healthy for <duration>"},
	{regexp.MustCompile(`\b(Healthy \([A-Za-z ]+ )(\d+h)?(\d+m)?\d+s\)`), "${1}<duration>)"}, // rollout waiting
	{regexp.MustCompile(`\bsoak \((\d+h)?(\d+m)?\d+s of`), "soak (<duration> of"},
	{regexp.MustCompile(`^(\d+h)?(\d+m)?\d+(\.\d+)?(s|ms|µs)$`), "<duration>"}, // a table cell of its own
}

// apply normalises text: the table in it, cell by cell, and every other line as a whole.
func (n *normaliser) apply(text string) string {
	lines := strings.SplitAfter(text, "\n")
	var b strings.Builder
	for i := 0; i < len(lines); i++ {
		if !isHeader(lines[i]) {
			b.WriteString(n.value(lines[i]))
			continue
		}
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != "" {
			end++
		}
		b.WriteString(n.table(lines[i:end]))
		i = end - 1
	}
	return b.String()
}

// value normalises one cell or line.
func (n *normaliser) value(s string) string {
	keys := make([]string, 0, len(n.known))
	for k := range n.known {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, n.known[k])
	}
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// isHeader reports a table's header line: capitals from its first column, with columns two
// spaces apart.
func isHeader(line string) bool {
	line = strings.TrimRight(line, "\n")
	return line != "" && line[0] >= 'A' && line[0] <= 'Z' && strings.Contains(line, "  ") && strings.IndexFunc(line, unicode.IsLower) < 0 && strings.IndexFunc(line, unicode.IsDigit) < 0
}

// table splits lines (a header and its rows, as text/tabwriter printed them) into cells at the
// header's columns, normalises each cell and aligns them again as the CLI does.
func (n *normaliser) table(lines []string) string {
	header := []rune(strings.TrimRight(lines[0], "\n"))
	var starts []int
	for i, r := range header {
		if r != ' ' && (i == 0 || (i >= 2 && header[i-1] == ' ' && header[i-2] == ' ')) {
			starts = append(starts, i)
		}
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, line := range lines {
		runes := []rune(strings.TrimRight(line, "\n"))
		cells := make([]string, len(starts))
		for k, from := range starts {
			to := len(runes)
			if k+1 < len(starts) {
				to = min(starts[k+1], len(runes))
			}
			if from < to {
				cells[k] = n.value(strings.TrimRight(string(runes[from:to]), " "))
			}
		}
		tw.Write([]byte(strings.Join(cells, "\t") + "\n"))
	}
	tw.Flush()
	return b.String()
}
