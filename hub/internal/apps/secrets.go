package apps

import "fmt"

// SecretsMode is an Application's spec.secrets: what the hub does with plain core/v1 Secret
// manifests in its render. Secrets belong in Git encrypted, as EncryptedSecret objects
// (flotilla.dev/v1alpha1) that only the target cluster's agent can decrypt.
type SecretsMode string

const (
	// SecretsWarn (the default) renders plain Secrets but names each in a warning on
	// `flotilla apps`.
	SecretsWarn SecretsMode = "warn"
	// SecretsDeny fails the render of an app holding a plain Secret; the last good state stays.
	SecretsDeny SecretsMode = "deny"
)

// parseSecretsMode reads spec.secrets; empty is SecretsWarn.
func parseSecretsMode(v string, errAt errorf) (SecretsMode, error) {
	switch SecretsMode(v) {
	case "":
		return SecretsWarn, nil
	case SecretsWarn, SecretsDeny:
		return SecretsMode(v), nil
	}
	return SecretsWarn, errAt("spec.secrets", fmt.Errorf("%q must be warn or deny", v))
}
