package fleet

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// Secrets in Git (invariant 7). A plain core/v1 Secret in a render means its values sit in Git
// in the clear; the app's spec.secrets says whether that is reported (warn, the default) or
// refused (deny). Only object names are ever reported, never values. An EncryptedSecret
// (flotilla.dev/v1alpha1) passes through untouched: the hub holds no age identity and never
// decrypts; the target cluster's agent turns it into a Secret just before it applies.

var secretGK = schema.GroupKind{Kind: "Secret"}

// checkSecrets returns a warning per plain Secret of b, or, when app denies them, an error
// naming them.
func (r *Reconciler) checkSecrets(app *apps.Application, b *bundle.Bundle) ([]string, error) {
	objs, err := r.policy.objects(b)
	if err != nil {
		return nil, err
	}
	var plain []string
	for _, o := range objs {
		if o.gk == secretGK {
			plain = append(plain, o.String())
		}
	}
	if len(plain) == 0 {
		return nil, nil
	}
	if app.Secrets == apps.SecretsDeny {
		return nil, fmt.Errorf("plain %s in Git refused by spec.secrets: deny: encrypt it as an EncryptedSecret", strings.Join(plain, ", "))
	}
	warnings := make([]string, len(plain))
	for i, p := range plain {
		warnings[i] = fmt.Sprintf("plain %s in Git: encrypt it as an EncryptedSecret (spec.secrets: deny refuses it)", p)
	}
	return warnings, nil
}

// addWarnings appends to info the warnings it lacks, without touching the slice it shares
// with the Application.
func addWarnings(info *AppInfo, warnings []string) {
	for _, w := range warnings {
		if !slices.Contains(info.Warnings, w) {
			info.Warnings = append(slices.Clip(info.Warnings), w)
		}
	}
}
