package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestLinksNoClientset keeps out of the agent's executable what it once linked for a few
// core/v1 calls and discovery: client-go's clientset, typed informers, listers, apply
// configurations, discovery client and restmapper, and with them every API group's types. They
// were half of the agent's memory (BENCHMARKS.md); agent/internal/kube does what it needs.
func TestLinksNoClientset(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := regexp.MustCompile(`^k8s\.io/client-go/(kubernetes|informers|listers|applyconfigurations|discovery|restmapper|dynamic/dynamicinformer|tools/record)(/|$)|^k8s\.io/api/(apps|batch|networking|rbac|storage|policy|autoscaling)/`)
	for _, p := range strings.Fields(string(out)) {
		if forbidden.MatchString(p) {
			t.Errorf("the agent links %s", p)
		}
	}
}
