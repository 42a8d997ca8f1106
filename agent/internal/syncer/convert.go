package syncer

import (
	"encoding/base64"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// Conversions between the syncer's types and the state package's (which cannot import syncer).

func toStateRefs(refs []apply.ObjectRef) []state.ObjectRef {
	out := make([]state.ObjectRef, len(refs))
	for i, r := range refs {
		out[i] = state.ObjectRef(r)
	}
	return out
}

func fromStateRefs(refs []state.ObjectRef) []apply.ObjectRef {
	out := make([]apply.ObjectRef, len(refs))
	for i, r := range refs {
		out[i] = apply.ObjectRef(r)
	}
	return out
}

func toStatePolicy(p SyncPolicy, h HealthPolicy, access AccessPolicy, rules []ignore.Rule) state.Policy {
	sp := state.Policy{
		Automated: p.Automated, Prune: p.Prune, SelfHeal: p.SelfHeal, AllowEmpty: p.AllowEmpty,
		CreateNamespace: p.CreateNamespace, PruneLast: p.PruneLast, PreserveResourcesOnDeletion: p.PreserveResourcesOnDeletion, Force: p.Force,
		IgnoreDifferences: rules, RespectIgnoreDifferences: p.RespectIgnoreDifferences, PrunePropagation: p.PrunePropagation,
		SkipValidation: p.SkipValidation,
		RetryLimit:     p.Retry.Limit, RetryDuration: p.Retry.Duration, RetryFactor: p.Retry.Factor,
		RetryMaxDuration: p.Retry.MaxDuration,
		ProgressDeadline: h.ProgressDeadline, AutoRollback: h.AutoRollback,
	}
	for _, r := range h.Rules {
		sp.HealthRules = append(sp.HealthRules, state.HealthRule(r))
	}
	sp.Namespaces = access.Namespaces
	for _, gk := range access.ClusterResources {
		sp.ClusterResources = append(sp.ClusterResources, state.GroupKind(gk))
	}
	for _, gk := range access.Deny {
		sp.Deny = append(sp.Deny, state.GroupKind(gk))
	}
	return sp
}

// fromStateAccess returns the access policy (spec.policy) the app was last applied with.
func fromStateAccess(p state.Policy) AccessPolicy {
	out := AccessPolicy{Namespaces: p.Namespaces}
	for _, gk := range p.ClusterResources {
		out.ClusterResources = append(out.ClusterResources, schema.GroupKind(gk))
	}
	for _, gk := range p.Deny {
		out.Deny = append(out.Deny, schema.GroupKind(gk))
	}
	return out
}

func fromStatePolicy(p state.Policy) (SyncPolicy, HealthPolicy) {
	return SyncPolicy{
			Automated: p.Automated, Prune: p.Prune, SelfHeal: p.SelfHeal, AllowEmpty: p.AllowEmpty,
			CreateNamespace: p.CreateNamespace, PruneLast: p.PruneLast, PreserveResourcesOnDeletion: p.PreserveResourcesOnDeletion, Force: p.Force,
			RespectIgnoreDifferences: p.RespectIgnoreDifferences, PrunePropagation: p.PrunePropagation, SkipValidation: p.SkipValidation,
			Retry: Retry{Limit: p.RetryLimit, Duration: p.RetryDuration, Factor: p.RetryFactor, MaxDuration: p.RetryMaxDuration},
		},
		HealthPolicy{ProgressDeadline: p.ProgressDeadline, AutoRollback: p.AutoRollback, Rules: healthRules(p.HealthRules)}
}

func healthRules(rules []state.HealthRule) []health.Rule {
	var out []health.Rule
	for _, r := range rules {
		out = append(out, health.Rule(r))
	}
	return out
}

// desiredFromState rebuilds the Desired an app's state was applied from, so that an agent that
// restarts keeps managing what it holds until the hub says otherwise.
func desiredFromState(st *state.AppState) (*Desired, error) {
	objs, err := bundle.Decode(st.Bundle)
	if err != nil {
		return nil, err
	}
	policy, hp := fromStatePolicy(st.Policy)
	return &Desired{
		App: st.App, Generation: st.Generation, Revision: st.Revision, Digest: st.Digest,
		Namespace: st.Namespace, Objects: objs, Bundle: st.Bundle, Policy: policy, Health: hp,
		Access: fromStateAccess(st.Policy), Ignore: st.Policy.IgnoreDifferences,
	}, nil
}

// scrubber masks the values of a revision's Secrets in text bound for logs and the hub
// (invariant 7): the API server may quote a rejected value back.
type scrubber []string

const mask = "***"

func newScrubber(d *Desired) scrubber {
	var values []string
	add := func(v string) {
		if len(v) >= 3 {
			values = append(values, v)
		}
	}
	for _, o := range d.Objects {
		gvk := o.GroupVersionKind()
		if gvk.Group != "" || gvk.Kind != "Secret" {
			continue
		}
		data, _ := o.Object["data"].(map[string]any)
		for _, v := range data {
			s, _ := v.(string)
			add(s)
			if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
				add(string(dec))
			}
		}
		sd, _ := o.Object["stringData"].(map[string]any)
		for _, v := range sd {
			s, _ := v.(string)
			add(s)
			add(base64.StdEncoding.EncodeToString([]byte(s)))
		}
	}
	// Longest first, so a value containing another is masked whole.
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	return values
}

func (s scrubber) scrub(text string) string {
	for _, v := range s {
		text = strings.ReplaceAll(text, v, mask)
	}
	const limit = 4096
	if len(text) > limit {
		text = text[:limit] + "…"
	}
	return text
}
