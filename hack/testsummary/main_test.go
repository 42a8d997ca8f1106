package main

import (
	"strings"
	"testing"
)

const run = `{"Action":"start","Package":"example/a"}
{"Action":"run","Package":"example/a","Test":"TestQuick"}
{"Action":"output","Package":"example/a","Test":"TestQuick","Output":"=== RUN   TestQuick\n"}
{"Action":"pass","Package":"example/a","Test":"TestQuick","Elapsed":0.5}
{"Action":"run","Package":"example/a","Test":"TestSlow"}
{"Action":"output","Package":"example/a","Test":"TestSlow/sub","Output":"sub says\n"}
{"Action":"pass","Package":"example/a","Test":"TestSlow/sub","Elapsed":40}
{"Action":"pass","Package":"example/a","Test":"TestSlow","Elapsed":42.04}
{"Action":"output","Package":"example/a","Output":"ok  \texample/a\t42.6s\n"}
{"Action":"pass","Package":"example/a","Elapsed":42.6}
{"Action":"run","Package":"example/b","Test":"TestBroken"}
{"Action":"output","Package":"example/b","Test":"TestBroken","Output":"    b_test.go:9: the widget is blue\n"}
{"Action":"fail","Package":"example/b","Test":"TestBroken","Elapsed":3}
{"Action":"run","Package":"example/b","Test":"TestHangs"}
{"Action":"output","Package":"example/b","Test":"TestHangs","Output":"    waiting for godot\n"}
{"Action":"output","Package":"example/b","Output":"FAIL\texample/b\t3.1s\n"}
{"Action":"fail","Package":"example/b","Elapsed":3.1}
`

func TestSummarise(t *testing.T) {
	var out strings.Builder
	failed, err := summarise(strings.NewReader(run), &out, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a failed test not reported as a failure")
	}
	got := out.String()
	for _, want := range []string{
		"ok  \texample/a\t42.6s\n",
		"--- example/b TestBroken (3s)\n    b_test.go:9: the widget is blue\n",
		"--- example/b TestHangs (did not finish)\n    waiting for godot\n",
		"FAIL\texample/b\t3.1s\n",
		"slowest 2 tests:\n       42s  example/a TestSlow\n        3s  example/b TestBroken\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "sub says") || strings.Contains(got, "TestQuick") {
		t.Errorf("a passing test's output or a fast test was printed:\n%s", got)
	}
}

func TestSummariseFailsOnNoResults(t *testing.T) {
	var out strings.Builder
	failed, err := summarise(strings.NewReader("# example/c\nc.go:3: undefined: x\n"), &out, 15)
	if err == nil || !failed {
		t.Fatalf("input without results: failed %t, err %v", failed, err)
	}
	if !strings.Contains(out.String(), "undefined: x") {
		t.Errorf("the build error was not passed through:\n%s", out.String())
	}
}
