package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Roles, carried as the only Organization of a client certificate.
const (
	RoleAgent    = "flotilla:agent"
	RoleOperator = "flotilla:operator"
	// RoleHub is a hub replica calling another replica (registry pull, fleet-wide queries).
	// Only the CA holder issues it (IssueReplica); an agent CSR never yields it.
	RoleHub = "flotilla:hub"
)

// ErrBadIdentity is returned (wrapped) by Identity for a certificate that names no valid
// identity.
var ErrBadIdentity = errors.New("certificate carries no valid flotilla identity")

// Identity returns the role and name of a verified peer certificate. The certificate must
// have exactly one Organization, a known role; for RoleAgent the CommonName is the cluster
// name and must be a DNS-1123 label; for RoleOperator it must be a valid operator name, and
// for RoleHub a valid replica (node) name, under the same rules.
// Anything else is an error wrapping ErrBadIdentity. Identity does not verify the
// certificate: call it only on a chain the TLS handshake verified against the CA.
func Identity(cert *x509.Certificate) (role, name string, err error) {
	if cert == nil {
		return "", "", fmt.Errorf("identity: %w: no certificate", ErrBadIdentity)
	}
	orgs := cert.Subject.Organization
	if len(orgs) != 1 {
		return "", "", fmt.Errorf("identity of certificate %q: %w: want exactly one organization, got %d", cert.Subject.CommonName, ErrBadIdentity, len(orgs))
	}
	name = cert.Subject.CommonName
	switch role = orgs[0]; role {
	case RoleAgent:
		if err := validateAgentName(name); err != nil {
			return "", "", fmt.Errorf("identity: %w: %w", ErrBadIdentity, err)
		}
	case RoleOperator, RoleHub:
		if err := validateOperatorName(name); err != nil {
			return "", "", fmt.Errorf("identity: %w: %w", ErrBadIdentity, err)
		}
	default:
		return "", "", fmt.Errorf("identity of certificate %q: %w: unknown role %q", name, ErrBadIdentity, role)
	}
	return role, name, nil
}

// validateAgentName checks that a cluster name is a DNS-1123 label.
func validateAgentName(cluster string) error {
	if errs := validation.IsDNS1123Label(cluster); len(errs) > 0 {
		return fmt.Errorf("cluster name %q is not a DNS-1123 label: %s", cluster, strings.Join(errs, "; "))
	}
	return nil
}
