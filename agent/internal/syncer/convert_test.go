package syncer

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// TestStatePolicyKeepsIgnoreDifferences: the rules and the apply options survive the state
// Secret, so a restarted agent ignores and applies as the hub said.
func TestStatePolicyKeepsIgnoreDifferences(t *testing.T) {
	rules := []ignore.Rule{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}, ManagedFieldsManagers: []string{"kube-controller-manager"}}}
	sp := SyncPolicy{Automated: true, RespectIgnoreDifferences: true, PrunePropagation: "foreground", SkipValidation: true}
	b, err := json.Marshal(toStatePolicy(sp, HealthPolicy{}, AccessPolicy{}, rules))
	if err != nil {
		t.Fatal(err)
	}
	var p state.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if got, _ := fromStatePolicy(p); got != sp {
		t.Errorf("sync policy %+v, want %+v", got, sp)
	}
	if !reflect.DeepEqual(p.IgnoreDifferences, rules) {
		t.Errorf("rules %+v, want %+v", p.IgnoreDifferences, rules)
	}
}
