package apps

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// flotillaDoc is the flotilla.dev/v1alpha1 Application, decoded strictly.
type flotillaDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Source      *sourceDoc  `json:"source,omitempty"`
		Sources     []sourceDoc `json:"sources,omitempty"`
		Destination struct {
			Clusters        []string              `json:"clusters,omitempty"`
			ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
			Namespace       string                `json:"namespace,omitempty"`
		} `json:"destination"`
		SyncPolicy *syncPolicyDoc `json:"syncPolicy,omitempty"`
		Health     *struct {
			ProgressDeadline *duration       `json:"progressDeadline,omitempty"`
			Rollback         string          `json:"rollback,omitempty"`
			CustomRules      []healthRuleDoc `json:"customRules,omitempty"`
		} `json:"health,omitempty"`
		Policy            *policyDoc     `json:"policy,omitempty"`
		Secrets           string         `json:"secrets,omitempty"`
		IgnoreDifferences []ignore.Rule  `json:"ignoreDifferences,omitempty"`
		DependsOn         []dependsOnDoc `json:"dependsOn,omitempty"`
		Rollout           *rolloutDoc    `json:"rollout,omitempty"`
	} `json:"spec"`
}

func parseFlotilla(file string, doc []byte, h header, errAt errorf) (*Application, []error) {
	var d flotillaDoc
	strict, err := sigsjson.UnmarshalStrict(doc, &d, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, []error{errAt("", fmt.Errorf("decode: %w", trimJSONPrefix(err)))}
	}
	var errs []error
	for _, e := range strict {
		errs = append(errs, errAt("", trimJSONPrefix(e)))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	a := &Application{
		Name:       d.Metadata.Name,
		SourceFile: file,
		Destination: Destination{
			Clusters:  d.Spec.Destination.Clusters,
			Namespace: d.Spec.Destination.Namespace,
		},
		Health: HealthPolicy{ProgressDeadline: DefaultProgressDeadline},
	}
	var srcErrs []error
	a.Source, a.Sources, srcErrs = sources(d.Spec.Source, d.Spec.Sources, errAt)
	errs = append(errs, srcErrs...)
	dst := d.Spec.Destination
	switch {
	case len(dst.Clusters) == 0 && dst.ClusterSelector == nil:
		errs = append(errs, errAt("spec.destination", fmt.Errorf("clusters or clusterSelector: %w", ErrRequired)))
	case len(dst.Clusters) > 0 && dst.ClusterSelector != nil:
		errs = append(errs, errAt("spec.destination", fmt.Errorf("clusters and clusterSelector are exclusive, set one")))
	case dst.ClusterSelector != nil:
		sel, err := metav1.LabelSelectorAsSelector(dst.ClusterSelector)
		if err != nil {
			errs = append(errs, errAt("spec.destination.clusterSelector", err))
		}
		a.Destination.Selector = sel
	}
	sp, spErrs := syncPolicy(d.Spec.SyncPolicy, errAt, func(i int, opt string) {
		errs = append(errs, errAt(fmt.Sprintf("spec.syncPolicy.syncOptions[%d]", i),
			fmt.Errorf("%q is not supported (want %s)", opt, SupportedSyncOptions)))
	})
	a.SyncPolicy = sp
	errs = append(errs, spErrs...)
	if hp := d.Spec.Health; hp != nil {
		if hp.ProgressDeadline != nil {
			v, err := hp.ProgressDeadline.parse("spec.health.progressDeadline", errAt)
			switch {
			case err != nil:
				errs = append(errs, err)
			case v == 0:
				errs = append(errs, errAt("spec.health.progressDeadline", fmt.Errorf("must be more than 0")))
			default:
				a.Health.ProgressDeadline = v
			}
		}
		switch hp.Rollback {
		case "", "none":
		case "auto":
			a.Health.AutoRollback = true
		default:
			errs = append(errs, errAt("spec.health.rollback", fmt.Errorf("%q must be auto or none", hp.Rollback)))
		}
		rules, ruleErrs := healthRules(hp.CustomRules, errAt)
		a.Health.CustomRules = rules
		errs = append(errs, ruleErrs...)
	}
	access, accessErrs := accessPolicy(d.Spec.Policy, a.Destination.Namespace, errAt)
	a.Access = access
	errs = append(errs, accessErrs...)
	a.IgnoreDifferences = d.Spec.IgnoreDifferences
	errs = append(errs, checkIgnoreDifferences(a.IgnoreDifferences, errAt)...)
	if a.Secrets, err = parseSecretsMode(d.Spec.Secrets, errAt); err != nil {
		errs = append(errs, err)
	}
	deps, depErrs := dependsOn(d.Spec.DependsOn, errAt)
	a.DependsOn = deps
	errs = append(errs, depErrs...)
	rollout, rolloutErrs := rolloutSpec(d.Spec.Rollout, errAt)
	a.Rollout = rollout
	errs = append(errs, rolloutErrs...)
	errs = append(errs, validate(a, errAt)...)
	if len(errs) > 0 {
		return nil, errs
	}
	if a.Spec, err = specDigest(&d); err != nil {
		return nil, []error{errAt("spec", err)}
	}
	a.Doc = doc
	return a, nil
}

// trimJSONPrefix drops the "json: " that encoding/json puts before its messages.
func trimJSONPrefix(err error) error {
	msg := err.Error()
	if s, ok := strings.CutPrefix(msg, "json: "); ok {
		return fmt.Errorf("%s", s)
	}
	return err
}
