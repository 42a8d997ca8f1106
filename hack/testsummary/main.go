// Command testsummary reads `go test -json` on stdin and writes what a person wants from a test
// run: each package's result line, the whole output of every test that failed, and at the end
// the slowest tests, so the suite stays fast. It exits non-zero when a test or a package failed
// (or the input held no result at all), so `go test -json ./... | testsummary` can gate CI.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

type result struct {
	key
	elapsed time.Duration
}

func main() {
	slowest := flag.Int("slowest", 15, "how many of the slowest tests to list")
	flag.Parse()
	failed, err := summarise(os.Stdin, os.Stdout, *slowest)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// summarise copies the run's essentials from r to w and reports whether anything failed.
func summarise(r io.Reader, w io.Writer, slowest int) (failed bool, err error) {
	output := map[key][]string{} // kept until the test (or package) passes or fails
	var done []result
	var packages int
	in := bufio.NewScanner(r)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		line := in.Bytes()
		var ev event
		if json.Unmarshal(line, &ev) != nil || ev.Action == "" {
			fmt.Fprintf(w, "%s\n", line) // not test2json: a build error, printed as it came
			continue
		}
		k := key{ev.Package, ev.Test}
		switch ev.Action {
		case "output":
			output[k] = append(output[k], ev.Output)
		case "pass", "skip":
			if ev.Test == "" {
				packages++
				fmt.Fprint(w, lastLine(output[k], fmt.Sprintf("ok  \t%s\n", ev.Package)))
			} else {
				done = append(done, result{k, seconds(ev.Elapsed)})
			}
			delete(output, k)
		case "build-output":
			fmt.Fprint(w, ev.Output)
		case "build-fail":
			failed = true
		case "fail":
			failed = true
			if ev.Test == "" {
				packages++
				// Tests cut short (a timeout, a panic elsewhere) never ended: their output, then
				// the package's own (panics, TestMain's words, FAIL).
				for _, t := range unfinished(output, ev.Package) {
					fmt.Fprintf(w, "--- %s %s (did not finish)\n%s", ev.Package, t, strings.Join(output[key{ev.Package, t}], ""))
					delete(output, key{ev.Package, t})
				}
				fmt.Fprint(w, strings.Join(output[k], ""))
			} else {
				done = append(done, result{k, seconds(ev.Elapsed)})
				fmt.Fprintf(w, "--- %s %s (%s)\n%s", ev.Package, ev.Test, seconds(ev.Elapsed), strings.Join(output[k], ""))
			}
			delete(output, k)
		}
	}
	if err := in.Err(); err != nil {
		return true, err
	}
	if packages == 0 {
		return true, fmt.Errorf("no test results in the input")
	}
	printSlowest(w, done, slowest)
	return failed, nil
}

// unfinished names the tests of pkg that have output but no result, in order.
func unfinished(output map[key][]string, pkg string) []string {
	var tests []string
	for k := range output {
		if k.pkg == pkg && k.test != "" {
			tests = append(tests, k.test)
		}
	}
	sort.Strings(tests)
	return tests
}

// printSlowest lists the n longest top-level tests (a subtest's time is in its parent's).
func printSlowest(w io.Writer, done []result, n int) {
	var top []result
	for _, r := range done {
		if !strings.Contains(r.test, "/") {
			top = append(top, r)
		}
	}
	sort.Slice(top, func(i, j int) bool { return top[i].elapsed > top[j].elapsed })
	if len(top) > n {
		top = top[:n]
	}
	fmt.Fprintf(w, "\nslowest %d tests:\n", len(top))
	for _, r := range top {
		fmt.Fprintf(w, "  %8s  %s %s\n", r.elapsed, strings.TrimPrefix(r.pkg, "github.com/flotilla-dev/flotilla/"), r.test)
	}
}

// lastLine is the package's result line as go test printed it ("ok  pkg 12.3s"), or def.
func lastLine(lines []string, def string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "ok ") || strings.HasPrefix(lines[i], "?") {
			return lines[i]
		}
	}
	return def
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond)
}
