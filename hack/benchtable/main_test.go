package main

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		rows   int
		failed bool
	}{
		{name: "metrics of two benchmarks", in: "pkg: x/e2e\nBenchmarkA-2   \t1\t0 ns/op\t12.5 hub-KiB/agent\t3 agents\nBenchmarkB/n=5-2 1 100 ns/op\nok x/e2e 1s\n", rows: 3},
		{name: "a log line named like a benchmark", in: "BenchmarkA: 20 agents enrolled\n", rows: 0},
		{name: "a failed package", in: "--- FAIL: BenchmarkA\nFAIL\tx/e2e\t1s\n", failed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, failed, err := parse(strings.NewReader(tt.in))
			if err != nil || len(rows) != tt.rows || failed != tt.failed {
				t.Fatalf("parse: %d rows, failed %v, err %v; want %d rows, failed %v", len(rows), failed, err, tt.rows, tt.failed)
			}
		})
	}
	var b strings.Builder
	rows, _, _ := parse(strings.NewReader("pkg: p\nBenchmarkA-2 1 4.5 s/x\n"))
	write(&b, rows)
	if !strings.Contains(b.String(), "| p | BenchmarkA-2 | s/x | 4.5 |") {
		t.Errorf("table:\n%s", b.String())
	}
}
