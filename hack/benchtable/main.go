// Command benchtable reads `go test -bench` output on stdin, passes it through to stderr, and
// writes one markdown table of every reported metric to stdout. It exits non-zero when a
// package failed or no benchmark reported anything, so `make bench` fails with it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// row is one metric of one benchmark.
type row struct {
	pkg, bench, unit string
	value            float64
}

func main() {
	rows, failed, err := parse(io.TeeReader(os.Stdin, os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	write(os.Stdout, rows)
	if failed || len(rows) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: a package failed or no benchmark reported a figure")
		os.Exit(1)
	}
}

// parse reads the benchmark result lines: "BenchmarkX-2  1  123 ns/op  4.5 unit ...".
func parse(r io.Reader) (rows []row, failed bool, err error) {
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "--- FAIL"):
			failed = true
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			if _, err := strconv.Atoi(f[1]); err != nil {
				continue // a log line that starts with the benchmark's name
			}
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					break
				}
				if f[i+1] == "ns/op" && v == 0 {
					continue // a benchmark that reports its own figures instead
				}
				rows = append(rows, row{pkg: pkg, bench: f[0], unit: f[i+1], value: v})
			}
		}
	}
	return rows, failed, sc.Err()
}

func write(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| package | benchmark | figure | value |")
	fmt.Fprintln(w, "|---|---|---|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.pkg, r.bench, r.unit, strconv.FormatFloat(r.value, 'g', 6, 64))
	}
}
