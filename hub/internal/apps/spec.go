package apps

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The manifest shapes both kinds share.

type syncPolicyDoc struct {
	Automated   *automatedDoc `json:"automated,omitempty"`
	SyncOptions []string      `json:"syncOptions,omitempty"`
	Retry       *retryDoc     `json:"retry,omitempty"`
	// PreserveResourcesOnDeletion (Argo CD ApplicationSet's name): an app removed from a
	// cluster leaves its objects there.
	PreserveResourcesOnDeletion bool `json:"preserveResourcesOnDeletion,omitempty"`
}

type automatedDoc struct {
	Prune      bool  `json:"prune,omitempty"`
	SelfHeal   bool  `json:"selfHeal,omitempty"`
	AllowEmpty bool  `json:"allowEmpty,omitempty"`
	Enabled    *bool `json:"enabled,omitempty"` // Argo CD: automated: {enabled: false} turns it off
}

type retryDoc struct {
	Limit   *int64      `json:"limit,omitempty"`
	Backoff *backoffDoc `json:"backoff,omitempty"`
}

type backoffDoc struct {
	Duration    *duration `json:"duration,omitempty"`
	Factor      *float64  `json:"factor,omitempty"`
	MaxDuration *duration `json:"maxDuration,omitempty"`
}

// duration is a duration as written: "90s", "5m", or a number of seconds ("5" or 5, as
// Argo CD allows).
type duration string

var _ json.Unmarshaler = (*duration)(nil)

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*d = duration(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"5m\", got %s", b)
	}
	*d = duration(n.String())
	return nil
}

// parse reads d, naming field on error.
func (d *duration) parse(field string, errAt errorf) (time.Duration, error) {
	s := strings.TrimSpace(string(*d))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		s = strconv.FormatInt(n, 10) + "s"
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, errAt(field, fmt.Errorf("%q is not a duration such as \"30s\" or \"5m\"", string(*d)))
	}
	if v < 0 {
		return 0, errAt(field, fmt.Errorf("%q is negative", string(*d)))
	}
	return v, nil
}

// Prune propagation policies (syncOptions PrunePropagationPolicy=...).
const (
	PropagationForeground = "foreground"
	PropagationBackground = "background"
	PropagationOrphan     = "orphan"
)

// SupportedSyncOptions lists the app sync options Flotilla takes, for messages.
const SupportedSyncOptions = "CreateNamespace, PruneLast, Force, Replace, Validate, RespectIgnoreDifferences, PrunePropagationPolicy=foreground|background|orphan, " +
	"and ServerSideApply=true, ApplyOutOfSyncOnly=true, FailOnSharedResource=true (always Flotilla's behaviour)"

// syncOptions reads the sync options Flotilla understands; unknown is called with the others.
// ServerSideApply=true, ApplyOutOfSyncOnly=true and FailOnSharedResource=true are what Flotilla
// always does: accepted, nothing to set. Replace=true is Force=true: an update cannot change an
// immutable field either, so the object is deleted and recreated.
func syncOptions(opts []string, sp *SyncPolicy, unknown func(i int, opt string)) {
	for i, o := range opts {
		k, v, _ := strings.Cut(strings.TrimSpace(o), "=")
		if k == "PrunePropagationPolicy" {
			switch p := strings.ToLower(v); p {
			case PropagationForeground, PropagationBackground, PropagationOrphan:
				sp.PrunePropagation = p
			default:
				unknown(i, o)
			}
			continue
		}
		b, err := strconv.ParseBool(v)
		switch {
		case err != nil:
			unknown(i, o)
		case k == "CreateNamespace":
			sp.CreateNamespace = b
		case k == "PruneLast":
			sp.PruneLast = b
		case k == "Force", k == "Replace":
			sp.Force = sp.Force || b
		case k == "Validate":
			sp.SkipValidation = !b
		case k == "RespectIgnoreDifferences":
			sp.RespectIgnoreDifferences = b
		case b && (k == "ServerSideApply" || k == "ApplyOutOfSyncOnly" || k == "FailOnSharedResource"):
		default:
			unknown(i, o)
		}
	}
}

// syncPolicy converts the shared syncPolicy block. Unknown sync options are passed to
// unknown, which decides whether they are warnings or errors.
func syncPolicy(d *syncPolicyDoc, errAt errorf, unknown func(i int, opt string)) (SyncPolicy, []error) {
	var sp SyncPolicy
	if d == nil {
		return sp, nil
	}
	if a := d.Automated; a != nil && (a.Enabled == nil || *a.Enabled) {
		sp.Automated, sp.Prune, sp.SelfHeal, sp.AllowEmpty = true, a.Prune, a.SelfHeal, a.AllowEmpty
	}
	sp.PreserveResourcesOnDeletion = d.PreserveResourcesOnDeletion
	syncOptions(d.SyncOptions, &sp, unknown)
	if d.Retry == nil {
		return sp, nil
	}
	var errs []error
	sp.Retry = Retry{Duration: DefaultRetryDuration, Factor: DefaultRetryFactor, MaxDuration: DefaultRetryMaxDuration}
	if d.Retry.Limit != nil {
		sp.Retry.Limit = int(*d.Retry.Limit)
	}
	if b := d.Retry.Backoff; b != nil {
		if b.Duration != nil {
			v, err := b.Duration.parse("spec.syncPolicy.retry.backoff.duration", errAt)
			if err != nil {
				errs = append(errs, err)
			}
			sp.Retry.Duration = v
		}
		if b.MaxDuration != nil {
			v, err := b.MaxDuration.parse("spec.syncPolicy.retry.backoff.maxDuration", errAt)
			if err != nil {
				errs = append(errs, err)
			}
			sp.Retry.MaxDuration = v
		}
		if b.Factor != nil {
			if *b.Factor < 1 {
				errs = append(errs, errAt("spec.syncPolicy.retry.backoff.factor", fmt.Errorf("%v is less than 1", *b.Factor)))
			}
			sp.Retry.Factor = *b.Factor
		}
	}
	return sp, errs
}
